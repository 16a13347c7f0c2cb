"""A one-shot espeak-ng process: read a request on stdin, answer on stdout.

espeak-ng keeps state between syntheses inside one process, so the same text spoken twice
in one process does not give the same samples; a fresh process per line does. The backend
(backend.py) therefore starts this module once per line:

    python -I -S .../worker.py  < request  > reply

Both directions are `marshal`-encoded (the caller runs this file with its own
interpreter, so the format always matches, and marshal costs no import where json pulls
in `re` and `enum`). Requests: ``{"op": "synth", "library", "data", "text", "voice",
"rate", "pitch", "volume"}`` or ``{"op": "voices", "library", "data"}``, where "library"
and "data" are the paths of libespeak-ng and its espeak-ng-data directory. The reply is
one dict: for "synth" ``{"sample_rate", "events", "audio"}`` (audio: signed 16-bit
little-endian mono), for "voices" ``{"voices"}``; a reply with an ``"error"`` key reports
a problem the caller can explain to the user (exit status 3).

Only ctypes and builtins are imported, so the caller can start Python with ``-I -S`` (no
site-packages, no .pth hooks): start-up is most of the cost of a line. ``python -m storybuild.backends.espeak.worker
--list-voices`` prints the voices (that mode finds the library through espeakng-loader).
"""

from __future__ import annotations

import ctypes
import marshal
import sys

# From espeak-ng's speak_lib.h (API revision 12).
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001  # espeak_Initialize option: emit espeakEVENT_PHONEME
RAND_SEED = 1  # any constant: the noise of breathy voices must not depend on the clock
CHARS_UTF8 = 1  # espeak_Synth flag; espeakSSML/espeakPHONEMES stay off so text is only text
POS_CHARACTER = 1
EE_OK, EE_NOT_FOUND = 0, 2
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH = 1, 2, 3
EVENT_LIST_TERMINATED, EVENT_WORD, EVENT_END, EVENT_PHONEME, EVENT_SAMPLERATE = 0, 1, 5, 7, 8

EXIT_USER_ERROR = 3


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """espeak_EVENT."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based, in characters (code points) of the text
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds
        ("sample", ctypes.c_int),  # samples from the start of the output
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    """espeak_VOICE."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, NUL-terminated name)…, then NUL
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class UserError(Exception):
    """A problem with the request itself (unknown voice), reported in the reply header."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _load(library: str, data_path: str) -> tuple[ctypes.CDLL, int]:
    """Load and initialise libespeak-ng; return it and its output sample rate."""
    lib = ctypes.CDLL(library)
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    # The data directory is given explicitly so that ESPEAK_DATA_PATH or a system-wide
    # espeak-ng install can never change what we synthesize.
    data = data_path.encode()
    sample_rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data, INITIALIZE_PHONEME_EVENTS)
    if sample_rate <= 0:
        raise RuntimeError(f"espeak_Initialize failed ({sample_rate}) with data at {data.decode()}")
    return lib, sample_rate


def _languages(raw: int | None) -> list[str]:
    """Decode espeak_VOICE.languages: repeated (priority byte, UTF-8 name, NUL), then NUL."""
    out: list[str] = []
    if not raw:
        return out
    pos = raw
    while ctypes.string_at(pos, 1) != b"\0":
        name = ctypes.string_at(pos + 1)
        out.append(name.decode("utf-8", "replace"))
        pos += 2 + len(name)
    return out


def list_voices(lib: ctypes.CDLL) -> list[dict]:
    """Every voice espeak-ng knows, sorted by identifier."""
    voices = []
    table = lib.espeak_ListVoices(None)
    i = 0
    while table[i]:
        v = table[i].contents
        voices.append({
            "name": (v.name or b"").decode("utf-8", "replace"),
            "identifier": (v.identifier or b"").decode("utf-8", "replace"),
            "languages": _languages(v.languages),
            "gender": {1: "male", 2: "female"}.get(v.gender, ""),
        })
        i += 1
    return sorted(voices, key=lambda v: (v["identifier"], v["name"]))


def synthesize(lib: ctypes.CDLL, request: dict) -> tuple[list[bytes], list[dict]]:
    """Speak the request's text; return the sample buffers and the timed events."""
    chunks: list[bytes] = []
    events: list[dict] = []

    def on_synth(wav: object, n: int, ev: object) -> int:
        if n > 0:
            chunks.append(ctypes.string_at(wav, n * 2))
        i = 0
        while ev[i].type != EVENT_LIST_TERMINATED:
            e = ev[i]
            if e.type in (EVENT_WORD, EVENT_PHONEME, EVENT_END):
                item = {"type": e.type, "pos": e.text_position, "ms": e.audio_position, "sample": e.sample}
                if e.type == EVENT_PHONEME:
                    # id.string is 8 bytes, NUL-terminated unless the name fills all 8.
                    item["name"] = bytes(e.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
                events.append(item)
            i += 1
        return 0  # 0 = continue synthesis

    callback = _SynthCallback(on_synth)  # kept referenced until synthesis has finished
    lib.espeak_SetSynthCallback(callback)
    voice = str(request["voice"]).encode()
    status = lib.espeak_SetVoiceByName(voice)
    if status == EE_NOT_FOUND:
        raise UserError("unknown_voice", f"espeak-ng has no voice named {request['voice']!r}")
    if status != EE_OK:
        raise RuntimeError(f"espeak_SetVoiceByName({request['voice']!r}) failed with status {status}")
    for param, key in ((PARAM_RATE, "rate"), (PARAM_PITCH, "pitch"), (PARAM_VOLUME, "volume")):
        if lib.espeak_SetParameter(param, int(request[key]), 0) != EE_OK:
            raise RuntimeError(f"espeak_SetParameter({key}={request[key]!r}) failed")
    text = str(request["text"]).encode("utf-8")
    # espeak-ng seeds its own random generator with time(NULL) when it initialises, and
    # voices with breath or roughness (most variants, e.g. +f3) draw their noise from it:
    # reseed with a constant so the same line gives the same samples in any second.
    if hasattr(lib, "espeak_ng_SetRandSeed"):
        lib.espeak_ng_SetRandSeed(ctypes.c_long(RAND_SEED))
    status = lib.espeak_Synth(text, len(text) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
    if status != EE_OK:
        raise RuntimeError(f"espeak_Synth failed with status {status}")
    lib.espeak_Synchronize()
    return chunks, events


def serve(request: dict) -> tuple[dict, int]:
    """Answer one request; return the reply and the exit status."""
    lib, sample_rate = _load(request["library"], request["data"])
    try:
        if request.get("op") == "voices":
            return {"voices": list_voices(lib)}, 0
        chunks, events = synthesize(lib, request)
    except UserError as exc:
        return {"error": exc.code, "message": str(exc)}, EXIT_USER_ERROR
    audio = b"".join(chunks)
    if sys.byteorder != "little":
        import array

        samples = array.array("h", audio)
        samples.byteswap()
        audio = samples.tobytes()
    return {"sample_rate": sample_rate, "events": events, "audio": audio}, 0


def main(argv: list[str]) -> int:
    if argv[1:] == ["--list-voices"]:
        import espeakng_loader

        lib, _ = _load(espeakng_loader.get_library_path(), espeakng_loader.get_data_path())
        for v in list_voices(lib):
            print(f"{v['identifier']:<28} {v['name']:<36} {' '.join(v['languages'])}")
        return 0
    reply, status = serve(marshal.loads(sys.stdin.buffer.read()))
    sys.stdout.buffer.write(marshal.dumps(reply))
    sys.stdout.buffer.flush()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
