// The map: every served track at its 2-D projection (fitted when the index was built), coloured
// by its top tag; hover for the title, click to open it; the last path or station drawn on top.

import { api, hasRoute } from "./api.js";
import { h, svg } from "./dom.js";

const WIDTH = 1000;
const HEIGHT = 520;
const PAD = 24;
const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324", "#469990", "#808000"];
const OTHER = "#9aa0a6";

function trail(params) {
  if (params.get("path")) return { kind: "path", ids: params.get("path").split(",") };
  try {
    return JSON.parse(sessionStorage.getItem("trail") || "null");
  } catch {
    return null;
  }
}

export async function renderMap(ctx, params) {
  ctx.view.append(h("h1", {}, "Map of the catalogue"));
  if (!(await hasRoute("GET /map/points"))) {
    ctx.view.append(h("p", { class: "unavailable", role: "status" }, "The map is not available on this server yet."));
    return;
  }
  const body = await api("/map/points");
  if (!ctx.isCurrent()) return;
  const points = body.points;
  if (!points.length) {
    ctx.view.append(h("p", { class: "empty" }, "The index holds no tracks yet."));
    return;
  }
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (x) => PAD + ((x - minX) / (maxX - minX || 1)) * (WIDTH - 2 * PAD);
  const sy = (y) => HEIGHT - PAD - ((y - minY) / (maxY - minY || 1)) * (HEIGHT - 2 * PAD);

  const counts = new Map();
  for (const p of points) if (p.tag) counts.set(p.tag, (counts.get(p.tag) || 0) + 1);
  const tags = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, PALETTE.length).map(([t]) => t);
  const colour = (tag) => (tags.includes(tag) ? PALETTE[tags.indexOf(tag)] : OTHER);

  const hover = h("div", { class: "map-hover", id: "map-hover", hidden: true });
  const plot = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "map", id: "map", role: "img",
    "aria-label": `${points.length} tracks placed by how they sound` });
  const byId = new Map(points.map((p) => [p.trackId, p]));

  const shown = trail(params);
  const trailPoints = shown ? shown.ids.map((id) => byId.get(id)).filter(Boolean) : [];
  if (trailPoints.length > 1) {
    plot.append(svg("polyline", { class: `trail ${shown.kind}`, id: "map-trail",
      points: trailPoints.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" ") }));
  }
  for (const p of points) {
    const dot = svg("circle", {
      cx: sx(p.x).toFixed(1), cy: sy(p.y).toFixed(1), r: trailPoints.includes(p) ? 7 : 5,
      fill: colour(p.tag), class: trailPoints.includes(p) ? "point on-trail" : "point",
      tabindex: "0", dataset: { trackId: p.trackId },
    }, svg("title", {}, p.title));
    const open = () => ctx.navigate(`/?track=${encodeURIComponent(p.trackId)}`);
    dot.addEventListener("click", open);
    dot.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
    dot.addEventListener("mouseenter", () => {
      hover.textContent = [p.title, (p.artists || []).join(", "), p.tag].filter(Boolean).join(" · ");
      hover.hidden = false;
    });
    dot.addEventListener("mouseleave", () => { hover.hidden = true; });
    plot.append(dot);
  }
  const legend = h("ul", { class: "legend", id: "map-legend" },
    tags.map((tag) => {
      const swatch = h("span", { class: "swatch" });
      swatch.style.background = colour(tag);
      return h("li", {}, swatch, tag);
    }),
    counts.size > tags.length ? h("li", {}, (() => { const s = h("span", { class: "swatch" }); s.style.background = OTHER; return s; })(), "other tags") : null,
  );
  ctx.view.append(
    h("p", {}, `${points.length} tracks; nearby points sound alike. Colour: top tag.`,
      trailPoints.length > 1 ? ` The line is the last ${shown.kind} you opened.` : ""),
    legend,
    h("div", { class: "map-wrap" }, plot, hover),
  );
}
