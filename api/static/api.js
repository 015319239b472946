// Talking to the API: JSON in and out, errors as ApiError with the API's own message,
// a loading indicator for anything that takes longer than LOADING_DELAY_MS.

export const LOADING_DELAY_MS = 200;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let pending = 0;
let loadingTimer = null;

function loadingStarted() {
  pending += 1;
  if (pending === 1) {
    loadingTimer = setTimeout(() => {
      document.getElementById("loading").hidden = false;
      document.getElementById("view").setAttribute("aria-busy", "true");
    }, LOADING_DELAY_MS);
  }
}

function loadingEnded() {
  pending -= 1;
  if (pending === 0) {
    clearTimeout(loadingTimer);
    document.getElementById("loading").hidden = true;
    document.getElementById("view").removeAttribute("aria-busy");
  }
}

function describe(status, data) {
  if (data && data.error && data.error.message) return [data.error.code || "error", data.error.message];
  if (status === 404) return ["route_not_found", "this server does not offer that yet"];
  if (status === 413) return ["too_large", "the upload is too large for this server"];
  if (status >= 500) return ["server_error", "the server could not answer; try again in a moment"];
  return ["http_error", `the server answered HTTP ${status}`];
}

export async function api(path, { method = "GET", json, body, contentType } = {}) {
  const init = { method, headers: { accept: "application/json" } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["content-type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
    init.headers["content-type"] = contentType || "application/octet-stream";
  }
  loadingStarted();
  try {
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, "network", "the server cannot be reached; check that it is running");
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const [code, message] = describe(response.status, data);
      throw new ApiError(response.status, code, message);
    }
    return data;
  } finally {
    loadingEnded();
  }
}

// Which routes and query parameters this server documents: views for routes it lacks say so
// instead of calling them, and filters it does not take are not offered.
let capabilities = null;

export async function routes() {
  if (!capabilities) {
    capabilities = api("/openapi.json").then((doc) => {
      const found = new Map();
      for (const [path, item] of Object.entries(doc.paths || {})) {
        for (const [method, operation] of Object.entries(item)) {
          const names = new Set((operation.parameters || []).map((p) => p.name));
          found.set(`${method.toUpperCase()} ${path}`, names);
        }
      }
      return found;
    });
    capabilities.catch(() => {
      capabilities = null; // asked again next time rather than remembered as broken
    });
  }
  return capabilities;
}

export async function hasRoute(key) {
  return (await routes()).has(key);
}

export async function routeParameters(key) {
  return (await routes()).get(key) || new Set();
}
