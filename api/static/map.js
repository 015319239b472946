// The map: every served track at its 2-D projection (fitted when the index was built), or an even
// sample of a big catalogue, coloured by its top tag; the last path or station drawn on top. The
// pointer picks the nearest dot (within NEAR_PX), so a dot under another is still reachable: hover
// for its title, click to open it. Tab and Enter reach every dot too.

import { api, hasRoute } from "./api.js";
import { h, svg } from "./dom.js";

const WIDTH = 1000;
const HEIGHT = 520;
const PAD = 24;
const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324", "#469990", "#808000"];
const OTHER = "#9aa0a6";
const NEAR_PX = 14;
const INCLUDE_MAX = 100; // GET /map/points takes at most this many include ids

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
  const shown = trail(params);
  const query = new URLSearchParams();
  for (const id of (shown ? shown.ids : []).slice(0, INCLUDE_MAX)) query.append("include", id);
  const body = await api(`/map/points${query.size ? `?${query}` : ""}`);
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

  const trailPoints = shown ? shown.ids.map((id) => byId.get(id)).filter(Boolean) : [];
  if (trailPoints.length > 1) {
    plot.append(svg("polyline", { class: `trail ${shown.kind}`, id: "map-trail",
      points: trailPoints.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" ") }));
  }
  const dots = [];
  let lit = null;
  // A ring drawn over every dot, around the one the pointer or the keyboard is on (moving the dot
  // itself to the top would change the Tab order).
  const ring = svg("circle", { class: "near-ring", id: "map-near", r: 9, visibility: "hidden" });
  const light = (entry) => {
    if (lit === entry) return;
    lit = entry;
    if (!entry) {
      ring.setAttribute("visibility", "hidden");
      hover.hidden = true;
      return;
    }
    ring.setAttribute("cx", entry.x.toFixed(1));
    ring.setAttribute("cy", entry.y.toFixed(1));
    ring.setAttribute("visibility", "visible");
    ring.dataset.trackId = entry.p.trackId;
    hover.textContent = [entry.p.title, (entry.p.artists || []).join(", "), entry.p.tag].filter(Boolean).join(" · ");
    hover.hidden = false;
  };
  const open = (p) => ctx.navigate(`/?track=${encodeURIComponent(p.trackId)}`);
  for (const p of points) {
    const x = sx(p.x);
    const y = sy(p.y);
    const dot = svg("circle", {
      cx: x.toFixed(1), cy: y.toFixed(1), r: trailPoints.includes(p) ? 7 : 5,
      fill: colour(p.tag), class: trailPoints.includes(p) ? "point on-trail" : "point",
      tabindex: "0", dataset: { trackId: p.trackId },
    }, svg("title", {}, p.title));
    const entry = { p, x, y, dot };
    dots.push(entry);
    dot.addEventListener("keydown", (event) => { if (event.key === "Enter") open(p); });
    dot.addEventListener("focus", () => light(entry));
    dot.addEventListener("blur", () => { if (lit === entry) light(null); });
    plot.append(dot);
  }
  plot.append(ring);
  // The dot nearest the pointer, in the plot's own units; none beyond NEAR_PX on screen.
  const nearest = (event) => {
    const matrix = plot.getScreenCTM();
    if (!matrix) return null;
    const at = new DOMPoint(event.clientX, event.clientY).matrixTransform(matrix.inverse());
    const reach = NEAR_PX / matrix.a;
    let best = null;
    let bestDistance = reach * reach;
    for (const entry of dots) {
      const distance = (entry.x - at.x) ** 2 + (entry.y - at.y) ** 2;
      if (distance <= bestDistance) {
        best = entry;
        bestDistance = distance;
      }
    }
    return best;
  };
  plot.addEventListener("mousemove", (event) => light(nearest(event)));
  plot.addEventListener("mouseleave", () => light(null));
  plot.addEventListener("click", (event) => {
    const entry = nearest(event);
    if (entry) open(entry.p);
  });
  const legend = h("ul", { class: "legend", id: "map-legend" },
    tags.map((tag) => {
      const swatch = h("span", { class: "swatch" });
      swatch.style.background = colour(tag);
      return h("li", {}, swatch, tag);
    }),
    counts.size > tags.length ? h("li", {}, (() => { const s = h("span", { class: "swatch" }); s.style.background = OTHER; return s; })(), "other tags") : null,
  );
  ctx.view.append(
    h("p", {}, body.total > body.count
      ? `${body.count} of the ${body.total} tracks (an even sample); nearby points sound alike. Colour: top tag.`
      : `${points.length} tracks; nearby points sound alike. Colour: top tag.`,
      trailPoints.length > 1 ? ` The line is the last ${shown.kind} you opened.` : ""),
    legend,
    h("div", { class: "map-wrap" }, plot, hover),
  );
}
