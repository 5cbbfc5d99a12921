// The Connect protocol with JSON over plain fetch (HTTP/1.1): what curl and
// a browser send.
export type ConnectResult<T> = { status: number; body: T & { code?: string; message?: string } };

export async function connectCall<T = Record<string, unknown>>(
  url: string,
  procedure: string,
  body: unknown,
  secret?: string,
): Promise<ConnectResult<T>> {
  const res = await fetch(`${url}/${procedure}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(secret ? { authorization: `Bearer ${secret}` } : {}),
    },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {} };
}
