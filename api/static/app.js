// The page's shell: which view the URL asks for, history (the back button works across views),
// messages, the player and the keyboard shortcuts.

import { ApiError, LOADING_DELAY_MS } from "./api.js";
import { clear } from "./dom.js";
import { label } from "./tracks.js";
import * as views from "./views.js";
import { renderMap } from "./map.js";

const view = document.getElementById("view");
const audio = document.getElementById("audio");
let renderToken = 0;

// --- messages ---------------------------------------------------------------------------------
function showMessage(text, kind = "error") {
  const box = document.getElementById("message");
  document.getElementById("message-text").textContent = text;
  box.dataset.kind = kind;
  box.hidden = false;
}

function clearMessage() {
  document.getElementById("message").hidden = true;
}

function showError(error) {
  if (error instanceof ApiError) showMessage(error.message);
  else {
    showMessage("something went wrong on this page; reload to try again");
    console.warn(error); // a bug of the page, reported where a developer looks
  }
}

// --- the player ---------------------------------------------------------------------------------
const player = {
  current: null,
  list: [],
  onNext: null, // a view may take over "next" (a station asks for more tracks)
  play(track, list) {
    this.current = track;
    if (list) this.list = list;
    audio.src = `/tracks/${encodeURIComponent(track.trackId)}/audio`;
    document.getElementById("now-playing").textContent = label(track);
    document.getElementById("play-toggle").disabled = false;
    document.getElementById("play-next").disabled = false;
    document.querySelectorAll(".track.playing").forEach((el) => el.classList.remove("playing"));
    document.querySelectorAll(`.track[data-track-id="${CSS.escape(track.trackId)}"]`)
      .forEach((el) => el.classList.add("playing"));
    audio.play().catch((error) => {
      if (error.name !== "AbortError") showMessage("this track's audio cannot be played here");
    });
  },
  toggle() {
    if (!this.current) {
      if (this.list.length) this.play(this.list[0]);
      return;
    }
    if (audio.paused) audio.play().catch(() => showMessage("this track's audio cannot be played here"));
    else audio.pause();
  },
  next() {
    if (this.onNext) return this.onNext();
    if (!this.list.length) return;
    const at = this.current ? this.list.findIndex((t) => t.trackId === this.current.trackId) : -1;
    const following = this.list[at + 1];
    if (following) this.play(following);
  },
};

audio.addEventListener("play", () => { document.getElementById("play-toggle").textContent = "Pause"; });
audio.addEventListener("pause", () => { document.getElementById("play-toggle").textContent = "Play"; });
audio.addEventListener("ended", () => player.next());
// Audio that takes a while to start says so, like every other slow answer.
let audioTimer = null;
audio.addEventListener("loadstart", () => {
  clearTimeout(audioTimer);
  audioTimer = setTimeout(() => document.getElementById("player").classList.add("buffering"), LOADING_DELAY_MS);
});
for (const done of ["playing", "pause", "error", "emptied"]) {
  audio.addEventListener(done, () => {
    clearTimeout(audioTimer);
    document.getElementById("player").classList.remove("buffering");
  });
}
audio.addEventListener("error", () => {
  if (player.current) showMessage(`no playable audio for “${player.current.title}” on this server`);
});
document.getElementById("play-toggle").addEventListener("click", () => player.toggle());
document.getElementById("play-next").addEventListener("click", () => player.next());
document.getElementById("message-close").addEventListener("click", clearMessage);

// --- navigation ---------------------------------------------------------------------------------
function navigate(url, { replace = false } = {}) {
  const target = new URL(url, location.href);
  if (replace) history.replaceState(null, "", target);
  else history.pushState(null, "", target);
  render();
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-nav]");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  event.preventDefault();
  navigate(link.href);
});
window.addEventListener("popstate", () => render());

document.getElementById("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = document.getElementById("search-input").value.trim();
  if (q) navigate(`/?q=${encodeURIComponent(q)}`);
});

// --- keyboard -----------------------------------------------------------------------------------
const ctx = { view, player, navigate, showMessage, clearMessage, showError, feedback: null };

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest("input, textarea, select, [contenteditable]")) return;
  const key = event.key.toLowerCase();
  if (key === " " || key === "k") {
    event.preventDefault();
    player.toggle();
  } else if (key === "n") {
    player.next();
  } else if (key === "l" || key === "d") {
    if (ctx.feedback) ctx.feedback(key === "l" ? "like" : "dislike");
    else showMessage("like and dislike steer a station: open a track and start one", "info");
  }
});

// --- views --------------------------------------------------------------------------------------
async function render() {
  const token = ++renderToken;
  const params = new URLSearchParams(location.search);
  document.body.dataset.ready = "false";
  ctx.feedback = null;
  player.onNext = null;
  clearMessage();
  clear(view);
  ctx.isCurrent = () => token === renderToken;
  document.getElementById("search-input").value = params.get("q") || "";
  try {
    if (location.pathname === "/map") await renderMap(ctx, params);
    else if (params.has("q")) await views.renderSearch(ctx, params.get("q"));
    else if (params.has("track")) await views.renderTrack(ctx, params);
    else if (params.has("station")) await views.renderStation(ctx, params.get("station"));
    else if (params.has("path")) await views.renderPath(ctx, params.get("path"));
    else await views.renderHome(ctx);
  } catch (error) {
    if (token === renderToken) showError(error);
  }
  if (token === renderToken) document.body.dataset.ready = "true";
}

render();
