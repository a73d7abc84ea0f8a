/** A caller of the simulator's REST routes (the v2 Action API): status and JSON answer, with a bearer token. */
export function restCaller(baseUrl: string, defaultToken = 'owner') {
  return async (method: string, path: string, body?: unknown, token = defaultToken) => {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, json: (await response.json()) as Record<string, any> };
  };
}
