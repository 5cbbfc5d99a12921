// Connect-Web clients of the service's own contracts (gen/), on the origin
// that served the console. Every call carries the session's credential.
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AdminService } from "../../gen/auditlog/v1/admin_pb.js";
import { QueryService } from "../../gen/auditlog/v1/query_pb.js";
import { authHeaders, type Session } from "./session.ts";

export type Clients = { query: Client<typeof QueryService>; admin: Client<typeof AdminService> };

export function clientsFor(session: Pick<Session, "credential" | "tenant">): Clients {
  const auth: Interceptor = (next) => (req) => {
    for (const [k, v] of Object.entries(authHeaders(session))) req.header.set(k, v);
    return next(req);
  };
  const transport = createConnectTransport({ baseUrl: location.origin, interceptors: [auth] });
  return { query: createClient(QueryService, transport), admin: createClient(AdminService, transport) };
}
