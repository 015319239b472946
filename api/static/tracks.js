// How a track looks wherever it is listed: one element with data-track-id per track.

import { h } from "./dom.js";

export function artistsOf(track) {
  return (track.artists || []).join(", ");
}

export function label(track) {
  const who = artistsOf(track);
  return who ? `${track.title} — ${who}` : track.title || track.trackId;
}

export function topTags(track, n = 3) {
  return Object.entries(track.tags || {})
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([tag]) => tag);
}

function similarityBar(similarity) {
  const fill = h("span", { class: "bar-fill" });
  // CSSOM, not a style attribute: the page's Content-Security-Policy allows no inline styles.
  fill.style.width = `${Math.max(0, Math.min(1, similarity)) * 100}%`;
  return h(
    "span",
    { class: "similarity", title: `cosine similarity ${similarity.toFixed(3)}` },
    h("span", { class: "bar", role: "img", "aria-label": `similarity ${similarity.toFixed(2)}` }, fill),
    h("span", { class: "bar-value" }, similarity.toFixed(3)),
  );
}

// tracks: summaries as the API returns them; options.actions(track) gives extra buttons.
export function trackList(ctx, tracks, { id, actions, numbered = true } = {}) {
  const list = h(numbered ? "ol" : "ul", { class: "tracks", id });
  for (const track of tracks) {
    const play = h(
      "button",
      { type: "button", class: "play", "aria-label": `Play ${track.title}`, title: "Play" },
      "▶",
    );
    play.addEventListener("click", () => ctx.player.play(track, tracks));
    list.append(
      h(
        "li",
        { class: "track", dataset: { trackId: track.trackId } },
        play,
        h(
          "span",
          { class: "info" },
          h("a", { href: `/?track=${encodeURIComponent(track.trackId)}`, "data-nav": true, class: "title" },
            track.title || track.trackId),
          h("span", { class: "artists" }, artistsOf(track)),
          h("span", { class: "tags" }, topTags(track).map((tag) => h("span", { class: "tag" }, tag))),
        ),
        typeof track.similarity === "number" ? similarityBar(track.similarity) : null,
        actions ? h("span", { class: "actions" }, actions(track)) : null,
      ),
    );
  }
  if (!tracks.length) list.append(h("li", { class: "empty" }, "No tracks."));
  return list;
}

const DESCRIPTOR_LABELS = {
  tempoBpm: ["Tempo", (v) => `${Math.round(v)} BPM`],
  key: ["Key", (v) => String(v)],
  mode: ["Mode", (v) => String(v)],
  camelot: ["Camelot", (v) => String(v)],
  loudnessLufs: ["Loudness", (v) => `${Number(v).toFixed(1)} LUFS`],
  dynamicRangeDb: ["Dynamic range", (v) => `${Number(v).toFixed(1)} dB`],
  energy: ["Energy", (v) => Number(v).toFixed(2)],
  brightness: ["Brightness", (v) => `${Math.round(v)} Hz`],
  onsetRate: ["Onsets", (v) => `${Number(v).toFixed(1)} /s`],
  percussiveness: ["Percussiveness", (v) => Number(v).toFixed(2)],
  danceability: ["Danceability", (v) => Number(v).toFixed(2)],
};

export function descriptorList(descriptors) {
  if (!descriptors || !Object.keys(descriptors).length) return null;
  const rows = [];
  for (const [key, value] of Object.entries(descriptors)) {
    if (value === null || typeof value === "object") continue;
    const [name, format] = DESCRIPTOR_LABELS[key] || [key, (v) => String(v)];
    rows.push(h("div", { class: "descriptor" }, h("dt", {}, name), h("dd", {}, format(value))));
  }
  return rows.length ? h("dl", { class: "descriptors", id: "descriptors" }, rows) : null;
}

export function tagBars(tags) {
  const entries = Object.entries(tags || {}).sort((a, b) => b[1] - a[1]);
  if (!entries.length) return null;
  return h(
    "ul",
    { class: "tag-bars", id: "tags" },
    entries.map(([tag, p]) => {
      const fill = h("span", { class: "bar-fill" });
      fill.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
      return h("li", {}, h("span", { class: "tag-name" }, tag), h("span", { class: "bar" }, fill),
        h("span", { class: "bar-value" }, p.toFixed(2)));
    }),
  );
}
