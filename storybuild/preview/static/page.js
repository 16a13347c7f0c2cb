// The storybuild preview page. One JSON document (pagedata.py) draws everything; the live
// page receives a fresh one over Server-Sent Events whenever a build step finishes, the
// static report has it inlined. Manifest text is untrusted: it only ever reaches the DOM
// through textContent and attributes, never innerHTML.
"use strict";
(function () {
  const live = document.body.dataset.mode === "live";
  const video = document.getElementById("film");
  let data = JSON.parse(document.getElementById("initial-data").textContent);
  let shownFilm = null;

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }
  const svg = (tag, attrs) => {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
    return el;
  };
  const secs = (s) => (s === null || s === undefined ? "" : s < 60 ? s.toFixed(1) + " s"
    : Math.floor(s / 60) + ":" + String(Math.floor(s % 60)).padStart(2, "0"));
  const stateLabel = { queued: "queued", running: "building", built: "built", cached: "cached", failed: "failed",
                       cancelled: "cancelled", skipped: "skipped", missing: "not built" };

  function seek(t) {
    if (t === null || t === undefined || !video.src) return;
    video.currentTime = t;
  }

  // ---------------------------------------------------------------- the player

  function renderFilm(film) {
    const info = document.getElementById("film-info");
    if (!film || !film.url) {
      info.textContent = "no film yet: it appears here when the first build finishes";
      return;
    }
    info.textContent = (film.quality === "preview" ? "preview quality" : "full quality") +
      (film.duration ? " · " + secs(film.duration) : "");
    if (film.url === shownFilm) return;
    // A new cut: keep the viewer's place and play state across the swap.
    const at = video.currentTime, playing = !video.paused && !video.ended;
    shownFilm = film.url;
    video.dataset.src = film.url;
    for (const t of video.querySelectorAll("track")) t.remove();
    video.src = film.url;
    if (film.subtitles) {
      video.append(h("track", { kind: "subtitles", label: "dialogue", srclang: "en", src: film.subtitles, default: true }));
    }
    video.addEventListener("loadedmetadata", function restore() {
      video.removeEventListener("loadedmetadata", restore);
      if (at > 0) video.currentTime = Math.min(at, Math.max(0, video.duration - 0.05));
      if (playing) video.play().catch(() => {});
    });
    video.load();
  }

  function renderCut() {
    const cut = document.getElementById("cut");
    const shots = data.scenes.flatMap((s) => s.shots).filter((s) => s.start !== null && s.end !== null);
    const total = shots.reduce((acc, s) => Math.max(acc, s.end), 0);
    cut.replaceChildren(...shots.map((s) => h("div", {
      "data-shot": s.id, title: s.id + " · " + secs(s.end - s.start),
      style: "flex: " + Math.max(0.001, (s.end - s.start) / (total || 1)),
      onclick: () => seek(s.start),
    }, s.id)));
  }

  function onTime() {
    const t = video.currentTime;
    let now = null;
    for (const scene of data.scenes) for (const shot of scene.shots) {
      if (shot.start !== null && t >= shot.start && t < shot.end) now = shot;
    }
    for (const el of document.querySelectorAll("[data-shot]")) {
      el.classList.toggle("now", !!now && el.dataset.shot === now.id);
    }
    const line = now && now.lines.find((l) => l.start !== null && t >= l.start && t < l.end);
    document.getElementById("caption").textContent = line ? line.name + ": " + line.text : "";
    for (const scene of data.scenes) {
      const mark = document.querySelector('.scene[data-scene="' + CSS.escape(scene.id) + '"] .wave line');
      if (!mark || scene.start === null || scene.end === null) continue;
      const inside = t >= scene.start && t < scene.end;
      const x = inside ? ((t - scene.start) / (scene.end - scene.start)) * scene.waveform.width : -10;
      mark.setAttribute("x1", x); mark.setAttribute("x2", x);
    }
  }

  // ---------------------------------------------------------------- the contact sheet

  function badge(status) {
    const label = stateLabel[status.state] || status.state;
    const pct = status.state === "running" && status.progress ? " " + Math.round(status.progress * 100) + "%" : "";
    return h("span", { class: "badge status " + status.state, "data-state": status.state,
                       title: status.quality ? status.quality + " quality" : null }, label + pct);
  }

  function waveform(scene) {
    const w = scene.waveform;
    if (!w) return null;
    const el = svg("svg", { class: "wave", viewBox: "0 0 " + w.width + " " + w.height, preserveAspectRatio: "none" });
    el.append(svg("path", { d: w.path }), svg("line", { x1: -10, x2: -10, y1: 0, y2: w.height }));
    if (scene.start !== null) {
      el.addEventListener("click", (ev) => {
        const box = el.getBoundingClientRect();
        seek(scene.start + ((ev.clientX - box.left) / box.width) * (scene.end - scene.start));
      });
    }
    return el;
  }

  function shotCard(shot) {
    const st = shot.status;
    return h("article", { class: "shot", "data-shot": shot.id, "data-state": st.state },
      shot.thumb ? h("img", { src: shot.thumb, alt: "shot " + shot.id, loading: "lazy", onclick: () => seek(shot.start) })
                 : h("div", { class: "noimg" }, "no picture yet"),
      h("div", { class: "body" },
        h("div", { class: "row" }, h("strong", {}, shot.id), badge(st)),
        h("div", { class: "row muted" },
          h("span", {}, shot.source + (shot.start !== null ? " · " + secs(shot.end - shot.start) : "")),
          h("span", { class: "loc" }, shot.loc)),
        st.state === "running" ? h("div", { class: "bar" }, h("i", { style: "width:" + Math.round((st.progress || 0) * 100) + "%" })) : null,
        st.state === "running" && st.message ? h("div", { class: "muted" }, st.action + ": " + st.message) : null,
        st.state === "failed" || st.state === "skipped" ? h("div", { class: "error" }, (st.loc ? st.loc + ": " : "") + (st.action ? st.action + ": " : "") + st.error) : null,
        shot.lines.map((line) => h("div", { class: "line", title: line.loc + (line.emotion !== "neutral" ? " · " + line.emotion : ""),
                                            onclick: () => seek(line.start) },
          h("span", { class: "who", style: "color:" + ((data.characters[line.character] || {}).color || "inherit") }, line.name + ": "),
          line.text,
          line.start !== null ? h("span", { class: "time" }, secs(line.start)) : null))));
  }

  function renderSheet() {
    document.getElementById("sheet").replaceChildren(...data.scenes.map((scene) =>
      h("section", { class: "scene", "data-scene": scene.id },
        h("div", { class: "scene-head" },
          h("h2", {}, scene.id), h("span", { class: "muted" }, [scene.location, scene.time].filter(Boolean).join(" · ")),
          badge(scene.status), h("span", { class: "loc" }, scene.loc)),
        waveform(scene),
        h("div", { class: "shots" }, scene.shots.map(shotCard)))));
  }

  // ---------------------------------------------------------------- status and timings

  function renderStatus() {
    const phase = document.getElementById("phase");
    const label = { building: "building…", idle: "up to date", error: "manifest has errors", starting: "starting…" };
    phase.textContent = label[data.phase] || data.phase;
    phase.className = "badge " + data.phase;
    document.body.dataset.version = data.version;
    document.body.dataset.phase = data.phase;
    document.title = data.title + " · storybuild";
    document.getElementById("title").textContent = data.title;

    const diag = document.getElementById("diagnostics");
    diag.hidden = data.diagnostics.length === 0;
    diag.replaceChildren(
      h("strong", {}, "The manifest has errors; the page shows the last good build."),
      ...data.diagnostics.map((d) => h("pre", { class: "diagnostic" },
        (d.file ? d.file + (d.line ? ":" + d.line + ":" + d.col : "") + ": " : "") + d.severity + ": " + d.message +
        (d.hint ? "\n  hint: " + d.hint : ""))));

    document.getElementById("running").replaceChildren(...data.running.map((r) =>
      h("div", {}, h("span", {}, r.action + (r.message ? " · " + r.message : "")),
        h("div", { class: "bar" }, h("i", { style: "width:" + Math.round((r.progress || 0) * 100) + "%" })))));
  }

  function renderTimings() {
    const box = document.getElementById("timings");
    const last = data.rebuilds[0];
    if (!last) { box.replaceChildren(h("h2", {}, "Build timings"), h("p", { class: "muted" }, "no rebuild yet")); return; }
    const rows = Object.entries(last.timings).slice(0, 15);
    const longest = rows.reduce((m, [, s]) => Math.max(m, s), 0) || 1;
    box.replaceChildren(...[
      h("h2", {}, "Build timings"),
      last.label ? h("p", { class: "muted" }, last.label + (last.failed.length ? " · " + last.failed.length + " failed" : ""))
        : h("p", {}, "#" + last.number + " (" + last.quality + "): " + last.outcome +
          (last.seconds !== null ? " in " + secs(last.seconds) : "") + " · " + last.ran.length + " ran, " +
          (last.cached + last.up_to_date) + " cached" + (last.failed.length ? ", " + last.failed.length + " failed" : "")),
      last.changed.length ? h("p", { class: "muted" }, "changed: " + last.changed.join(", ")) : null,
      h("table", {}, rows.map(([action, s]) => h("tr", {},
        h("td", {}, action), h("td", { class: "num" }, s.toFixed(2) + " s"),
        h("td", { style: "width:35%" }, h("div", { class: "spark", style: "width:" + (100 * s / longest) + "%" }))))),
      data.rebuilds.length > 1 ? h("h2", { style: "margin-top:12px" }, "Rebuilds") : null,
      data.rebuilds.length < 2 ? null : h("table", {}, data.rebuilds.map((r) => h("tr", { class: "rebuild" },
        h("td", {}, "#" + r.number + " " + r.quality), h("td", {}, r.outcome),
        h("td", { class: "num" }, r.ran.length + " ran"), h("td", { class: "num" }, r.seconds !== null ? secs(r.seconds) : "…"))))
    ].filter(Boolean));
  }

  function render() {
    renderStatus();
    renderFilm(data.film);
    renderCut();
    renderSheet();
    renderTimings();
    onTime();
  }

  video.addEventListener("timeupdate", onTime);
  video.addEventListener("seeked", onTime);
  render();

  if (live && window.EventSource) {
    const status = document.getElementById("connection");
    const source = new EventSource("events");
    source.addEventListener("state", (ev) => { data = JSON.parse(ev.data); render(); });
    source.onopen = () => { status.textContent = "live"; };
    source.onerror = () => { status.textContent = "reconnecting…"; };
  }
})();
