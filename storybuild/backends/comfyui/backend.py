"""The ComfyUI backend: keyframes, clips, lip-sync and speech made on a farm of ComfyUI servers.

    params (planning.py) ──bind + uploads──► Job ──farm (any free server)──► Fetched files
        ──mediafiles.py / speechfiles.py──► keyframe.png | clip.mp4 (+matte.mp4) | lipsync.mp4 | line.wav + timings.json

Concurrent actions share one farm per configuration, so servers are fed from one queue.
The key of an action holds the bound workflow and the model names, never a server URL:
the same workflow on another server with the same models is the same action.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

from storybuild.backends.comfyui import CAPABILITIES, NAME, VERSION
from storybuild.backends.comfyui.jobrecords import JobRecord
from storybuild.backends.comfyui.prompt import binding_values, bound_workflow
from storybuild.backends.comfyui.settings import read_config, servers_of
from storybuild.backends.comfyui.workflow import FILE_PARAMS, BindingSpec, lookup, parse_loc
from storybuild.backends.contract import ActionContext, SpeechRequest
from storybuild.errors import BackendError, Diagnostic, ManifestError

OUTPUTS = {"keyframe": "keyframe.png", "clip": "clip.mp4", "lipsync": "lipsync.mp4", "speech": "line.wav"}

_farms: dict[str, Any] = {}
_farms_lock = threading.Lock()
_recorders: list[Callable[[JobRecord], None]] = []


def add_recorder(recorder: Callable[[JobRecord], None]) -> None:
    """Receive every job record of every farm (the engine stores them in its state DB)."""
    _recorders.append(recorder)


def remove_recorder(recorder: Callable[[JobRecord], None]) -> None:
    """Stop sending records to `recorder` (the build that added it has ended)."""
    try:
        _recorders.remove(recorder)
    except ValueError:
        pass


def _record(record: JobRecord) -> None:
    for recorder in list(_recorders):
        recorder(record)


def farm_for(config: Any):
    """The farm shared by every action with this server configuration (created on first use)."""
    from storybuild.backends.comfyui.client import ComfyClient
    from storybuild.backends.comfyui.farm import Farm
    from storybuild.backends.comfyui.jobrunner import Worker

    settings = read_config(config)
    servers = servers_of(settings)
    timeout = float(settings.get("timeout") or 600.0)
    key = json.dumps([[dataclasses.asdict(s) for s in servers], timeout, settings.get("poll_interval"),
                      settings.get("breaker_threshold", 3), settings.get("breaker_cooldown", 30.0)], sort_keys=True)
    with _farms_lock:
        farm = _farms.get(key)
        if farm is None:
            def make_worker(slot, index: int) -> Worker:
                client = ComfyClient(slot.url, timeout=min(timeout, 60.0))
                return Worker(client, lambda refresh=False: slot.object_info(client, refresh), timeout=timeout,
                              poll_interval=float(settings.get("poll_interval") or 0.5))

            farm = Farm(servers, make_worker, on_record=_record,
                        breaker_threshold=int(settings.get("breaker_threshold", 3)),
                        breaker_cooldown=float(settings.get("breaker_cooldown", 30.0)))
            _farms[key] = farm
        return farm


def close_farms() -> None:
    """Stop every farm's worker threads (end of a build, tests)."""
    with _farms_lock:
        farms = list(_farms.values())
        _farms.clear()
    for farm in farms:
        farm.close()


class ComfyUIBackend:
    """Generative pictures, lip-sync and voices on ComfyUI servers."""

    name, version = NAME, VERSION
    capabilities = CAPABILITIES
    setup_hint = "add a server under backends.comfyui.servers"

    def parse_config(self, raw: Any) -> dict[str, Any]:
        """The section as ctx.config holds it: every setting, with its default."""
        return read_config(raw)

    def configured(self, config: Mapping[str, Any]) -> bool:
        """Ready to take work: at least one server."""
        return bool(config.get("servers"))

    def setting_files(self, raw: Mapping[str, Any]) -> dict[str, str]:
        """Project files the section names, by setting: a saved object_info dump."""
        value = raw.get("object_info")
        return {"object_info": value} if isinstance(value, str) and value else {}

    # ---- what the command line asks of a backend that runs work on servers (cli/backendcmds.py)

    def models(self, manifest: Any) -> tuple[dict[str, dict[str, list[str]]], dict[str, str]]:
        """Each server's model files by folder, and the unreachable servers with why."""
        from storybuild.backends.comfyui.commands import models_by_server

        return models_by_server(manifest)

    def check_live(self, manifest: Any, actions: Any) -> list[Any]:
        """The workflows checked against the servers' object_info (validate --backends)."""
        from storybuild.backends.comfyui.commands import check_live

        return check_live(manifest, actions)

    def job_stats(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Success rate and mean times of job records, overall, per workflow and per server."""
        from storybuild.backends.comfyui.jobrecords import stats

        return stats(records)

    @staticmethod
    def add_recorder(recorder: Callable[[JobRecord], None]) -> None:
        """Send each job attempt's record to `recorder` (a build records them in the state DB)."""
        add_recorder(recorder)

    @staticmethod
    def remove_recorder(recorder: Callable[[JobRecord], None]) -> None:
        """Stop sending records to `recorder`."""
        remove_recorder(recorder)

    def plan_picture(self, ex: Any, shot: Any, look: Any, lines: list[dict]) -> list[Any]:
        """Add a generative shot's actions (keyframe, clip, lip-sync; takes) through the planner's
        expansion context `ex`; return the inputs the shot's render takes from them."""
        from storybuild.backends.comfyui.shotplan import generative_actions

        return generative_actions(ex, shot, look, lines)

    def plan_speech(self, request: SpeechRequest) -> dict[str, Any]:
        """A line's params: the text-to-speech workflow, bound to the text and the voice."""
        from storybuild.backends.comfyui.expansion import resolve_workflow

        if request.manifest is not None and not self.configured(read_config(
                request.manifest.backends.settings.get(NAME))):
            raise ManifestError([Diagnostic("comfyui cannot speak this line: it is not set up",
                                            request.voice_loc or request.loc,
                                            f"{self.setup_hint}, or choose another voice engine", code="backend")])

        params = resolve_workflow(request.manifest, "tts", request.workflow, {"text": request.text, **request.voice},
                                  kind="speech", seed_key=f"{request.shot}/{request.index}", loc=request.loc)
        params["sample_rate"] = request.sample_rate
        return params

    def config_key(self, action_kind: str, params: Mapping[str, Any], config: Mapping[str, Any]) -> Any:
        """The bound workflow and its model names; server URLs deliberately left out."""
        return {"workflow": bound_workflow(params), "models": sorted(params.get("models") or ())}

    def run(self, ctx: ActionContext) -> Mapping[str, Path]:
        if ctx.kind not in OUTPUTS:
            raise BackendError(f"the comfyui backend cannot run {ctx.kind!r} actions "
                               f"(it runs {', '.join(sorted(OUTPUTS))})")
        scratch = ctx.out_dir / ".comfyui"  # downloads and the dialogue track; removed at the end
        scratch.mkdir(parents=True, exist_ok=True)
        try:
            return self._run(ctx, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _run(self, ctx: ActionContext, scratch: Path) -> Mapping[str, Path]:
        from storybuild.backends.comfyui.jobrunner import Job

        params = ctx.params
        inputs = dict(ctx.inputs)
        if ctx.kind == "lipsync" and "audio" not in inputs:
            inputs["audio"] = self._dialogue(ctx, scratch)
        prompt = bound_workflow(params, inputs)
        values = binding_values(params, inputs)
        uploads = {}
        for raw in params.get("bindings") or ():
            param = BindingSpec.read(raw).param
            present, name = lookup(values, param)
            if param in FILE_PARAMS and present and name is not None:
                if str(name) not in inputs:
                    raise BackendError(f"{ctx.action_id}: '{param}' names the input {name!r}, "
                                       "which this action does not have", parse_loc(params.get("loc")))
                uploads[str(name)] = inputs[str(name)]
        what = f"workflow {params.get('workflow_id', 'workflow')!r} for {ctx.action_id}"
        job = Job(prompt=prompt, what=what, uploads=uploads, outputs=tuple(params.get("outputs") or ()),
                  workflow=str(params.get("workflow_id") or "workflow"), capability=params.get("capability"),
                  models=frozenset(params.get("models") or ()), custom_nodes=dict(params.get("custom_nodes") or {}),
                  loc=parse_loc(params.get("loc")), action_id=ctx.action_id)
        farm = farm_for(ctx.config)
        submitted = farm.submit(lambda worker: worker.run(job, scratch, ctx.progress, ctx.cancel_event),
                                workflow=job.workflow, capability=job.capability, models=job.models,
                                action_id=ctx.action_id, cancel=ctx.cancel_event)
        try:
            fetched = farm.result(submitted, queue_timeout=float(read_config(ctx.config).get("timeout") or 600.0))
        finally:
            if submitted.records:
                ctx.extra["comfyui"] = {"server": submitted.records[-1].server,
                                        "attempts": [r.to_json() for r in submitted.records]}
        return self._outputs(ctx, fetched, values, what)

    def _dialogue(self, ctx: ActionContext, scratch: Path) -> Path:
        from storybuild.backends.comfyui.speechfiles import dialogue_track

        lines = (ctx.params.get("values") or {}).get("lines") or []
        if not lines:
            raise BackendError(f"{ctx.action_id}: lipsync needs the shot's lines (values.lines)")
        rate = int(ctx.params.get("sample_rate") or 48000)
        return dialogue_track(lines, ctx.inputs, rate, scratch / "dialogue.wav")

    def _outputs(self, ctx: ActionContext, fetched: Any, values: Mapping[str, Any], what: str) -> dict[str, Path]:
        from storybuild.backends.comfyui import mediafiles as media

        fps = float(values["fps"]) if values.get("fps") else None
        if ctx.kind == "keyframe":
            return {"keyframe.png": media.write_keyframe(fetched, ctx.output("keyframe.png"), what)}
        if ctx.kind in ("clip", "lipsync"):
            name = OUTPUTS[ctx.kind]
            matte = ctx.output("matte.mp4") if ctx.params.get("capability") == "video_alpha" else None
            return media.write_clip(fetched, ctx.output(name), fps, what, cancel=ctx.cancel_event, matte=matte)
        from storybuild.backends.comfyui.speechfiles import speech_outputs

        sounds = fetched.of_kind("audio")
        if not sounds:
            raise BackendError(f"{what}: expected audio, the workflow produced none")
        rate = int(ctx.params.get("sample_rate") or 48000)
        return speech_outputs(sounds[0], str(values.get("text", "")), rate, ctx.out_dir, fetched.texts)
