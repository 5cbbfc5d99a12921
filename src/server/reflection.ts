// gRPC server reflection (grpc.reflection.v1 and v1alpha), served from the
// descriptors embedded in the generated code. Spec:
// https://github.com/grpc/grpc/blob/master/doc/server-reflection.md
//
// Used by grpcurl, buf curl, Postman, grpcui and friends. Both versions share
// one implementation; only the generated message schemas differ.

import { create, toBinary, type DescFile, type DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandlerOptions } from "@connectrpc/connect/protocol";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { file_google_rpc_error_details } from "../../gen/google/rpc/error_details_pb.js";
import { file_health_v1_health } from "../../gen/health/v1/health_pb.js";

/** The request fields both versions have in common. */
type Request = {
  messageRequest:
    | { case: "fileByFilename"; value: string }
    | { case: "fileContainingSymbol"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: "allExtensionNumbersOfType"; value: string }
    | { case: "listServices"; value: string }
    | { case: undefined; value?: undefined };
};

/** The response oneof both versions have in common. */
type Answer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/** Name lookups over a set of files and all their transitive imports. */
class DescriptorIndex {
  readonly services: string[];
  /** File name ("foo/bar.proto") -> file. */
  readonly #files = new Map<string, DescFile>();
  /** Fully qualified name of any message, enum, enum value, extension, service or method -> file. */
  readonly #symbols = new Map<string, DescFile>();
  /** "<extendee type name>#<number>" -> file declaring the extension. */
  readonly #extensions = new Map<string, DescFile>();
  readonly #extensionNumbers = new Map<string, number[]>();
  readonly #messages = new Set<string>();
  /** Serialized FileDescriptorProto per file name, computed on first use. */
  readonly #encoded = new Map<string, Uint8Array>();

  constructor(files: DescFile[]) {
    const services = new Set<string>();
    for (const file of files) {
      for (const service of file.services) services.add(service.typeName);
      this.#addFile(file);
    }
    this.services = [...services].sort();
  }

  #addFile(file: DescFile): void {
    const name = file.proto.name;
    if (this.#files.has(name)) return;
    this.#files.set(name, file);
    for (const dep of file.dependencies) this.#addFile(dep);
    const addMessage = (message: DescMessage) => {
      this.#symbols.set(message.typeName, file);
      this.#messages.add(message.typeName);
      for (const nested of message.nestedMessages) addMessage(nested);
      for (const e of message.nestedEnums) addEnum(e);
      for (const ext of message.nestedExtensions) addExtension(ext);
      // Fields are symbols too (grpc-go answers for them).
      for (const field of message.fields) this.#symbols.set(`${message.typeName}.${field.name}`, file);
      for (const oneof of message.oneofs) this.#symbols.set(`${message.typeName}.${oneof.name}`, file);
    };
    const addEnum = (e: (typeof file.enums)[number]) => {
      this.#symbols.set(e.typeName, file);
      // Enum values live in the scope enclosing the enum (C++ scoping rules).
      const dot = e.typeName.lastIndexOf(".");
      const scope = dot < 0 ? "" : e.typeName.slice(0, dot + 1);
      for (const value of e.values) this.#symbols.set(scope + value.name, file);
    };
    const addExtension = (ext: (typeof file.extensions)[number]) => {
      this.#symbols.set(ext.typeName, file);
      this.#extensions.set(`${ext.extendee.typeName}#${ext.number}`, file);
      const numbers = this.#extensionNumbers.get(ext.extendee.typeName) ?? [];
      numbers.push(ext.number);
      this.#extensionNumbers.set(ext.extendee.typeName, numbers);
    };
    for (const message of file.messages) addMessage(message);
    for (const e of file.enums) addEnum(e);
    for (const ext of file.extensions) addExtension(ext);
    for (const service of file.services) {
      this.#symbols.set(service.typeName, file);
      for (const method of service.methods) this.#symbols.set(`${service.typeName}.${method.name}`, file);
    }
  }

  fileByName(name: string): DescFile | undefined {
    return this.#files.get(name);
  }

  fileContainingSymbol(symbol: string): DescFile | undefined {
    // Clients sometimes send a leading dot (".pkg.Message").
    return this.#symbols.get(symbol.startsWith(".") ? symbol.slice(1) : symbol);
  }

  fileContainingExtension(typeName: string, number: number): DescFile | undefined {
    return this.#extensions.get(`${typeName}#${number}`);
  }

  isMessage(typeName: string): boolean {
    return this.#messages.has(typeName);
  }

  extensionNumbers(typeName: string): number[] {
    return [...(this.#extensionNumbers.get(typeName) ?? [])].sort((a, b) => a - b);
  }

  /** The file first, then every transitive import once (dependencies before dependents). */
  withDependencies(file: DescFile): Uint8Array[] {
    const ordered: DescFile[] = [];
    const seen = new Set<string>();
    const visit = (f: DescFile) => {
      if (seen.has(f.proto.name)) return;
      seen.add(f.proto.name);
      for (const dep of f.dependencies) visit(dep);
      ordered.push(f);
    };
    seen.add(file.proto.name);
    for (const dep of file.dependencies) visit(dep);
    return [file, ...ordered].map((f) => this.#encode(f));
  }

  #encode(file: DescFile): Uint8Array {
    let bytes = this.#encoded.get(file.proto.name);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.#encoded.set(file.proto.name, bytes);
    }
    return bytes;
  }
}

function notFound(what: string): Answer {
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: `${what} not found` } };
}

function answer(index: DescriptorIndex, req: Request): Answer {
  const r = req.messageRequest;
  switch (r.case) {
    case "listServices":
      return { case: "listServicesResponse", value: { service: index.services.map((name) => ({ name })) } };
    case "fileByFilename": {
      const file = index.fileByName(r.value);
      if (file === undefined) return notFound(`file ${JSON.stringify(r.value)}`);
      return { case: "fileDescriptorResponse", value: { fileDescriptorProto: index.withDependencies(file) } };
    }
    case "fileContainingSymbol": {
      const file = index.fileContainingSymbol(r.value);
      if (file === undefined) return notFound(`symbol ${JSON.stringify(r.value)}`);
      return { case: "fileDescriptorResponse", value: { fileDescriptorProto: index.withDependencies(file) } };
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = r.value;
      const file = index.fileContainingExtension(containingType, extensionNumber);
      if (file === undefined) return notFound(`extension ${extensionNumber} of ${JSON.stringify(containingType)}`);
      return { case: "fileDescriptorResponse", value: { fileDescriptorProto: index.withDependencies(file) } };
    }
    case "allExtensionNumbersOfType": {
      if (!index.isMessage(r.value)) return notFound(`message type ${JSON.stringify(r.value)}`);
      return {
        case: "allExtensionNumbersResponse",
        value: { baseTypeName: r.value, extensionNumber: index.extensionNumbers(r.value) },
      };
    }
    default:
      return {
        case: "errorResponse",
        value: { errorCode: Code.InvalidArgument, errorMessage: "message_request is not set or not supported" },
      };
  }
}

/**
 * Registers grpc.reflection.v1.ServerReflection and
 * grpc.reflection.v1alpha.ServerReflection. `files` are the files of the
 * services the server exposes; their imports are found automatically.
 * list_services reports the services declared in `files`, plus reflection
 * itself and grpc.health.v1.Health. `options` overrides router options for
 * these two services.
 */
export function registerReflection(router: ConnectRouter, files: DescFile[], options?: Partial<UniversalHandlerOptions>): void {
  const index = new DescriptorIndex([
    ...files,
    file_health_v1_health,
    // The error details every error carries, so that reflection clients (buf curl, grpcurl) decode them.
    file_google_rpc_error_details,
    v1.file_grpc_reflection_v1_reflection,
    v1alpha.file_grpc_reflection_v1alpha_reflection,
  ]);
  router.service(
    v1.ServerReflection,
    {
      async *serverReflectionInfo(requests) {
        for await (const req of requests) {
          yield create(v1.ServerReflectionResponseSchema, {
            validHost: req.host,
            originalRequest: req,
            messageResponse: answer(index, req),
          });
        }
      },
    },
    options,
  );
  router.service(
    v1alpha.ServerReflection,
    {
      async *serverReflectionInfo(requests) {
        for await (const req of requests) {
          yield create(v1alpha.ServerReflectionResponseSchema, {
            validHost: req.host,
            originalRequest: req,
            messageResponse: answer(index, req),
          });
        }
      },
    },
    options,
  );
}
