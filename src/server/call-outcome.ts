// An RPC's outcome, for the interceptors that observe calls (telemetry, the
// access log): `done` is called once, with undefined on success or with the
// error, when a unary call returns or a response stream ends. A stream the
// consumer stopped reading ends with the abort's reason (client gone,
// deadline) or CANCELED.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

type Next = Parameters<Interceptor>[0];
type Request = Parameters<Next>[0];
type Response = Awaited<ReturnType<Next>>;

export async function observeOutcome(req: Request, call: () => Promise<Response>, done: (err: unknown) => void): Promise<Response> {
  let res: Response;
  try {
    res = await call();
  } catch (err) {
    done(err);
    throw err;
  }
  if (!res.stream) {
    done(undefined);
    return res;
  }
  const messages = res.message;
  async function* observed() {
    let failure: unknown;
    let completed = false;
    try {
      yield* messages;
      completed = true;
    } catch (err) {
      failure = err;
      throw err;
    } finally {
      if (failure === undefined && !completed) {
        failure = req.signal.aborted ? ConnectError.from(req.signal.reason) : new ConnectError("response stream abandoned", Code.Canceled);
      }
      done(failure);
    }
  }
  return { ...res, message: observed() };
}
