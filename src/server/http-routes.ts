import type { NodeRequest, NodeResponse } from "./listener.ts";

export type HttpRoute = (req: NodeRequest, res: NodeResponse) => Promise<boolean>;

/** Tries each route in order; resolves true as soon as one answered the request. */
export function chainHttpRoutes(...routes: HttpRoute[]): HttpRoute {
  return async (req, res) => {
    for (const route of routes) if (await route(req, res)) return true;
    return false;
  };
}
