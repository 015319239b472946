// The views: home (with the upload box), search, track, station and path.

import { api, ApiError, hasRoute, routeParameters } from "./api.js";
import { h } from "./dom.js";
import { artistsOf, descriptorList, label, tagBars, trackList } from "./tracks.js";

export const STATION_BATCH = 10;
export const PATH_LENGTH = 10;
export const PLAYLIST_LENGTH = 20;
export const SEARCH_LIMIT = 20;

function unavailable(what) {
  return h("p", { class: "unavailable", role: "status" }, `${what} is not available on this server yet.`);
}

function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", {}, title), ...children);
}

// --- home and upload ------------------------------------------------------------------------------
export async function renderHome(ctx) {
  ctx.view.append(
    h("section", { class: "intro" },
      h("h1", {}, "Find tracks that sound like this one"),
      h("p", {}, "Search the catalogue above, open a track to hear what sounds like it, steer a station, ",
        "draw a path between two tracks, explore the ", h("a", { href: "/map", "data-nav": true }, "map"),
        ", or drop in a clip of your own.")),
    await uploadBox(ctx),
  );
}

const AUDIO_TYPES = new Set(["audio/mpeg", "audio/wav", "audio/x-wav", "audio/wave", "audio/ogg", "audio/flac", "audio/x-flac"]);

function uploadType(file) {
  if (file.type === "audio/x-wav" || file.type === "audio/wave") return "audio/wav";
  if (file.type === "audio/x-flac") return "audio/flac";
  return AUDIO_TYPES.has(file.type) ? file.type : "application/octet-stream";
}

export async function uploadBox(ctx) {
  const box = h("section", { class: "panel upload", id: "upload" }, h("h2", {}, "Sounds like your clip"));
  if (!(await hasRoute("POST /recommendations/by-audio"))) {
    box.append(unavailable("Query by audio"));
    return box;
  }
  const results = h("div", { id: "upload-results" });
  const input = h("input", { type: "file", id: "upload-input", accept: "audio/*", class: "visually-hidden" });
  const zone = h("label", { for: "upload-input", class: "dropzone", id: "dropzone", tabindex: "0" },
    "Drop an audio clip here, or choose a file (mp3, wav, ogg, flac; the first 30 s are used)");
  async function send(file) {
    if (!file) return;
    results.replaceChildren(h("p", { class: "pending" }, `Listening to ${file.name}…`));
    try {
      const body = await api("/recommendations/by-audio", { method: "POST", body: file, contentType: uploadType(file) });
      results.replaceChildren(
        h("p", {}, `Tracks that sound like ${file.name}:`),
        trackList(ctx, body.results, { id: "upload-list" }),
      );
    } catch (error) {
      results.replaceChildren();
      ctx.showError(error);
    }
  }
  input.addEventListener("change", () => send(input.files[0]));
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter") input.click();
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    send(event.dataTransfer.files[0]);
  });
  box.append(zone, input, results);
  return box;
}

// --- search -----------------------------------------------------------------------------------
export async function renderSearch(ctx, q) {
  ctx.view.append(h("h1", {}, `Search: ${q}`));
  if (!(await hasRoute("GET /search"))) {
    ctx.view.append(unavailable("Search"));
    return;
  }
  const body = await api(`/search?${new URLSearchParams({ q, limit: SEARCH_LIMIT })}`);
  if (!ctx.isCurrent()) return;
  ctx.view.append(
    body.results.length
      ? trackList(ctx, body.results, { id: "search-results" })
      : h("p", { class: "empty", id: "search-results" }, `Nothing in the catalogue matches “${q}”.`),
  );
}

// --- track ------------------------------------------------------------------------------------
// The filters the track view offers, each shown only when GET /recommendations documents it.
const FILTERS = [
  { param: "maxPerArtist", label: "At most per artist", kind: "select", options: [["", "any"], ["1", "1"], ["2", "2"], ["3", "3"]] },
  { param: "minTempo", label: "Tempo from (BPM)", kind: "number" },
  { param: "maxTempo", label: "to (BPM)", kind: "number" },
  { param: "key", label: "Compatible key", kind: "checkbox", value: "compatible" },
];

function filterForm(ctx, params, supported, onChange) {
  const form = h("form", { class: "filters", id: "filters" });
  for (const filter of FILTERS) {
    if (!supported.has(filter.param)) continue;
    const current = params.get(filter.param) || "";
    let control;
    if (filter.kind === "select") {
      control = h("select", { name: filter.param },
        filter.options.map(([value, text]) => h("option", { value, selected: value === current }, text)));
    } else if (filter.kind === "checkbox") {
      control = h("input", { type: "checkbox", name: filter.param, value: filter.value, checked: current === filter.value });
    } else {
      control = h("input", { type: "number", name: filter.param, min: "20", max: "300", step: "1", value: current, inputmode: "numeric" });
    }
    form.append(h("label", {}, filter.label, " ", control));
  }
  if (!form.childElementCount) return null;
  form.addEventListener("change", () => {
    const next = new URLSearchParams({ track: params.get("track") });
    for (const [name, value] of new FormData(form)) if (value) next.set(name, value);
    onChange(next);
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  return form;
}

export async function renderTrack(ctx, params) {
  const trackId = params.get("track");
  const supported = await routeParameters("GET /recommendations");
  const query = new URLSearchParams({ trackId });
  for (const filter of FILTERS) {
    if (supported.has(filter.param) && params.get(filter.param)) query.set(filter.param, params.get(filter.param));
  }
  const body = await api(`/recommendations?${query}`);
  if (!ctx.isCurrent()) return;
  const track = body.query;
  const [canStation, canContinue, canPath] = await Promise.all([
    hasRoute("POST /stations"), hasRoute("POST /playlists/continue"), hasRoute("GET /path"),
  ]);
  const extra = h("div", { id: "track-extra" });
  const playButton = h("button", { type: "button", class: "primary", id: "play-track" }, "▶ Play");
  playButton.addEventListener("click", () => ctx.player.play(track, [track, ...body.results]));

  const stationButton = h("button", { type: "button", id: "start-station", disabled: !canStation,
    title: canStation ? "A radio station seeded with this track" : "stations are not available on this server yet" },
  "Start a station");
  stationButton.addEventListener("click", async () => {
    try {
      const station = await api("/stations", { method: "POST", json: { name: track.title || trackId, seeds: [trackId] } });
      ctx.navigate(`/?station=${encodeURIComponent(station.stationId)}`);
    } catch (error) {
      ctx.showError(error);
    }
  });

  const continueButton = h("button", { type: "button", id: "continue-playlist", disabled: !canContinue,
    title: canContinue ? "A playlist that carries on from this track" : "playlist continuation is not available on this server yet" },
  "Continue as playlist");
  continueButton.addEventListener("click", async () => {
    try {
      const playlist = await api("/playlists/continue", { method: "POST", json: { seeds: [trackId], length: PLAYLIST_LENGTH } });
      extra.replaceChildren(section("Playlist from this track",
        h("p", {}, `Mean similarity from one track to the next: ${playlist.meanStepSimilarity.toFixed(3)}`),
        trackList(ctx, playlist.tracks, { id: "playlist" })));
      ctx.player.list = playlist.tracks;
    } catch (error) {
      ctx.showError(error);
    }
  });

  const pathButton = h("button", { type: "button", id: "path-to", disabled: !canPath,
    title: canPath ? "A path from this track to another" : "paths are not available on this server yet" },
  "Path to another track…");
  pathButton.addEventListener("click", () => extra.replaceChildren(pathPicker(ctx, trackId)));

  const filters = filterForm(ctx, params, supported, (next) => ctx.navigate(`/?${next}`, { replace: true }));
  ctx.view.append(
    h("section", { class: "track-head" },
      h("h1", { id: "track-title", dataset: { trackId } }, track.title || trackId),
      h("p", { class: "artists" }, artistsOf(track), track.album ? ` · ${track.album}` : ""),
      h("div", { class: "buttons" }, playButton, stationButton, continueButton, pathButton)),
    h("div", { class: "columns" },
      h("div", { class: "about" }, tagBars(track.tags), descriptorList(track.descriptors)),
      section("Sounds like", filters, trackList(ctx, body.results, { id: "recommendations" }))),
    extra,
  );
  ctx.player.list = [track, ...body.results];
}

function pathPicker(ctx, fromId) {
  const results = h("div", { id: "path-targets" });
  const input = h("input", { type: "search", id: "path-search", placeholder: "Search the track to end at", "aria-label": "Path target" });
  const form = h("form", { class: "path-picker" }, input, h("button", { type: "submit" }, "Find"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const q = input.value.trim();
    if (!q) return;
    if (!(await hasRoute("GET /search"))) {
      results.replaceChildren(unavailable("Search"));
      return;
    }
    try {
      const body = await api(`/search?${new URLSearchParams({ q, limit: SEARCH_LIMIT })}`);
      const list = trackList(ctx, body.results.filter((t) => t.trackId !== fromId), {
        id: "path-target-list",
        actions: (target) => {
          const go = h("button", { type: "button", class: "go" }, "Path here");
          go.addEventListener("click", () => ctx.navigate(`/?path=${encodeURIComponent(fromId)},${encodeURIComponent(target.trackId)}`));
          return go;
        },
      });
      results.replaceChildren(list);
    } catch (error) {
      ctx.showError(error);
    }
  });
  return section("Path to another track", form, results);
}

// --- station ----------------------------------------------------------------------------------
// The sliders stop below the API's limit (10): past a few times the other weights, one dominates anyway.
const WEIGHT_MAX = 3;
const WEIGHTS = [
  ["styleWeight", "Style (the seeds)"],
  ["likeWeight", "Likes"],
  ["dislikeWeight", "Dislikes"],
];

export async function renderStation(ctx, stationId) {
  if (!(await hasRoute("POST /stations/{stationId}/next"))) {
    ctx.view.append(h("h1", {}, "Station"), unavailable("Stations"));
    return;
  }
  const path = `/stations/${encodeURIComponent(stationId)}`;
  const station = await api(path);
  if (!ctx.isCurrent()) return;
  const queueHolder = h("div", { id: "station-queue" });
  let queue = [];

  async function refill() {
    const body = await api(`${path}/next`, { method: "POST", json: { n: STATION_BATCH } });
    if (!ctx.isCurrent()) return;
    queue = body.tracks;
    draw();
  }

  async function feedback(track, signal) {
    try {
      await api(`${path}/feedback`, { method: "POST", json: { trackId: track.trackId, signal } });
      // The next tracks change at once: what was queued is replaced by the station's new answer.
      await refill();
      ctx.showMessage(`${signal === "like" ? "Liked" : signal === "dislike" ? "Disliked" : "Skipped"} “${track.title}”; the queue has changed.`, "info");
    } catch (error) {
      ctx.showError(error);
    }
  }

  function draw() {
    queueHolder.replaceChildren(trackList(ctx, queue, {
      id: "queue",
      actions: (track) => ["like", "dislike", "skip"].map((signal) => {
        const button = h("button", { type: "button", class: `fb ${signal}`, dataset: { signal },
          "aria-label": `${signal} ${track.title}` }, { like: "Like", dislike: "Dislike", skip: "Skip" }[signal]);
        button.addEventListener("click", () => feedback(track, signal));
        return button;
      }),
    }));
    ctx.player.list = queue;
    sessionStorage.setItem("trail", JSON.stringify({ kind: "station", ids: queue.map((t) => t.trackId) }));
  }

  // Keyboard like/dislike apply to the track playing (else the first queued); "next" skips it.
  const target = () => ctx.player.current && queue.some((t) => t.trackId === ctx.player.current.trackId)
    ? ctx.player.current : queue[0];
  ctx.feedback = (signal) => { if (target()) feedback(target(), signal); };
  ctx.player.onNext = () => {
    const at = ctx.player.current ? queue.findIndex((t) => t.trackId === ctx.player.current.trackId) : -1;
    if (queue[at + 1]) ctx.player.play(queue[at + 1], queue);
    else refill().then(() => queue[0] && ctx.player.play(queue[0], queue)).catch((e) => ctx.showError(e));
  };

  const sliders = h("form", { class: "weights", id: "weights" });
  for (const [name, text] of WEIGHTS) {
    const value = Number(station[name] ?? 0);
    const output = h("output", {}, value.toFixed(1));
    const slider = h("input", { type: "range", name, min: "0", max: String(WEIGHT_MAX), step: "0.1", value: String(value), "aria-label": text });
    slider.addEventListener("input", () => { output.textContent = Number(slider.value).toFixed(1); });
    slider.addEventListener("change", async () => {
      try {
        await api(path, { method: "PATCH", json: { [name]: Number(slider.value) } });
        await refill();
      } catch (error) {
        ctx.showError(error);
      }
    });
    sliders.append(h("label", {}, text, slider, output));
  }
  const share = h("a", { href: `/?station=${encodeURIComponent(stationId)}`, class: "share" }, "link to share this station");
  ctx.view.append(
    h("section", { class: "track-head" }, h("h1", { id: "station-name" }, station.name || "Station"),
      h("p", {}, "Like, dislike or skip to steer what plays next (keys l, d, n). ", share)),
    h("div", { class: "columns" }, section("Weights", sliders), section("Up next", queueHolder)),
  );
  await refill();
}

// --- path -------------------------------------------------------------------------------------
export async function renderPath(ctx, value) {
  const [from, to] = value.split(",");
  ctx.view.append(h("h1", {}, "Path"));
  if (!from || !to) throw new ApiError(400, "bad_request", "a path link names two tracks: /?path=FROM,TO");
  if (!(await hasRoute("GET /path"))) {
    ctx.view.append(unavailable("Paths"));
    return;
  }
  const body = await api(`/path?${new URLSearchParams({ from, to, length: PATH_LENGTH })}`);
  if (!ctx.isCurrent()) return;
  const tracks = body.tracks;
  sessionStorage.setItem("trail", JSON.stringify({ kind: "path", ids: tracks.map((t) => t.trackId) }));
  ctx.view.append(
    h("p", {}, `From ${label(tracks[0])} to ${label(tracks[tracks.length - 1])}, one step at a time. `,
      h("a", { href: "/map", "data-nav": true }, "See it on the map")),
    trackList(ctx, tracks, { id: "path" }),
  );
  ctx.player.list = tracks;
}
