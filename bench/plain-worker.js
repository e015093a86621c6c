// The baseline for the edge-proxy bench: a plain pass-through worker. It forwards
// GET /api/v2/jobs/{id} to the upstream with the key, and nothing else.
export default {
  async fetch(request, env) {
    const m = /^\/api\/v2\/jobs\/([A-Za-z0-9_-]{1,128})$/.exec(new URL(request.url).pathname);
    if (request.method !== "GET" || !m) return new Response('{"error":"not_found"}', { status: 404 });
    const up = await fetch(`${env.APIFRAME_BASE_URL}/v2/jobs/${m[1]}`, {
      headers: { "x-api-key": env.APIFRAME_API_KEY, accept: "application/json" },
    });
    return new Response(up.body, {
      status: up.status,
      headers: { "content-type": up.headers.get("content-type") ?? "application/json", "cache-control": "no-store" },
    });
  },
};
