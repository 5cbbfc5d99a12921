import { create, createFileRegistry, type DescMessage, type MessageInitShape, setExtension } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FieldOptionsSchema,
  FileDescriptorProtoSchema,
  MessageOptionsSchema,
} from "@bufbuild/protobuf/wkt";
import { createValidator } from "@bufbuild/protovalidate";
import {
  field as fieldRulesExt,
  FieldRulesSchema,
  message as messageRulesExt,
  MessageRulesSchema,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { describe, expect, it } from "vitest";
import { type Event, EventSchema } from "../../gen/auditlog/v1/event_pb.js";
import { compilePrecheck } from "../../src/domain/rule-precheck.ts";
import { fullEvent, minimalEvent } from "./fixtures.ts";
import { mulberry32 } from "../support/random.ts";

const validator = createValidator();
const precheck = compilePrecheck(EventSchema)!;
const valid = (e: Event) => validator.validate(EventSchema, e).kind === "valid";

// Strings near every boundary of the contract: lengths around the limits (in
// code points, with characters outside the BMP), pattern edge cases and
// spellings of IP addresses that engines disagree about.
const PIECES = ["a", "Z", "0", ".", "_", "-", ":", " ", "é", "😀", "\u0000", "\n", "A.b", "..", "x\ud800"];
const IPS = [
  "",
  "10.0.0.1",
  "255.255.255.255",
  "256.0.0.1",
  "01.2.3.4",
  "1.2.3",
  "1.2.3.4.5",
  "::1",
  "2001:db8::1",
  "fe80::1%eth0",
  "1.2.3.4/8",
  " 1.2.3.4",
  "1.2.3.4\n",
  "0.0.0.0",
  "::ffff:1.2.3.4",
  "a.b.c.d",
];
const LIMITS = [0, 1, 2, 127, 128, 129, 255, 256, 257, 1023, 1024, 1025, 4095, 4096, 4097];

function stringNear(rnd: () => number): string {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  if (rnd() < 0.3) {
    const n = pick(LIMITS);
    const unit = pick(["a", "é", "😀"]);
    return unit.repeat(n);
  }
  let s = "";
  const n = Math.floor(rnd() * 6);
  for (let i = 0; i < n; i++) s += pick(PIECES);
  return s;
}

type Mutator = (e: Event, rnd: () => number) => void;
const MUTATORS: Mutator[] = [
  (e, r) => void (e.id = stringNear(r)),
  (e, r) => void (e.action = r() < 0.5 ? stringNear(r) : `${stringNear(r)}.${stringNear(r)}`.toLowerCase()),
  (e, r) => void (e.message = stringNear(r)),
  (e, r) => {
    if (e.actor) e.actor.id = stringNear(r);
  },
  (e, r) => {
    if (e.actor) e.actor.name = stringNear(r);
  },
  (e, r) => {
    if (e.actor) e.actor.ip = IPS[Math.floor(r() * IPS.length)]!;
  },
  (e, r) => {
    if (e.actor) e.actor.userAgent = stringNear(r);
  },
  (e, r) => {
    if (e.actor) e.actor.type = Math.floor(r() * 6) - 1;
  },
  (e, r) => void (e.outcome = Math.floor(r() * 7) - 1),
  (e, r) => void (e.severity = Math.floor(r() * 7) - 1),
  (e) => void (e.actor = undefined),
  (e) => void (e.occurredAt = undefined),
  (e, r) => void (e.occurredAt = { ...e.occurredAt!, seconds: [-1n, 0n, 9223372036n, 9223372037n, 1n][Math.floor(r() * 5)]! }),
  (e, r) =>
    void (e.occurredAt = { ...e.occurredAt!, nanos: [0, 854775000, 854775001, 999_999_999, 1_000_000_000, -1][Math.floor(r() * 6)]! }),
  (e, r) =>
    void (e.target =
      r() < 0.5 ? undefined : (create(EventSchema.field.target!.message!, { type: stringNear(r), id: stringNear(r) }) as Event["target"])),
  (e, r) =>
    void (e.context = create(EventSchema.field.context!.message!, {
      requestId: stringNear(r),
      location: stringNear(r),
    }) as Event["context"]),
];

describe("compilePrecheck (Event)", () => {
  it("compiles the contract's rules", () => {
    expect(compilePrecheck(EventSchema)).not.toBeNull();
  });

  it("passes ordinary valid events, so protovalidate is rarely needed", () => {
    expect(precheck(minimalEvent())).toBe(true);
    expect(precheck(fullEvent({ actor: { id: "u", ip: "192.0.2.1" } }))).toBe(true);
    expect(precheck(minimalEvent({ id: "", message: "😀".repeat(4096) }))).toBe(true);
  });

  it("never passes what protovalidate rejects (30,000 mutated events)", () => {
    const rnd = mulberry32(5);
    let passed = 0;
    let validCount = 0;
    for (let i = 0; i < 30_000; i++) {
      const e = fullEvent({ actor: { id: "u", ip: "192.0.2.1" } });
      const n = 1 + Math.floor(rnd() * 3);
      for (let k = 0; k < n; k++) MUTATORS[Math.floor(rnd() * MUTATORS.length)]!(e, rnd);
      const isValid = valid(e);
      if (isValid) validCount++;
      if (precheck(e)) {
        passed++;
        expect(
          isValid,
          JSON.stringify(e, (_k, v) => (typeof v === "bigint" ? v.toString() : v)),
        ).toBe(true);
      }
    }
    // Not vacuous: both verdicts occur, and most valid events pass the pre-check.
    expect(validCount).toBeGreaterThan(3_000);
    expect(validCount).toBeLessThan(27_000);
    expect(passed).toBeGreaterThan(validCount * 0.8);
  });

  it("leaves what it cannot decide cheaply to protovalidate", () => {
    // IPv6 is valid, but only protovalidate's parser decides it.
    const e = fullEvent({ actor: { id: "u", ip: "2001:db8::1" } });
    expect(valid(e)).toBe(true);
    expect(precheck(e)).toBe(false);
  });
});

describe("compilePrecheck (rules it does not understand)", () => {
  /** A message `t.M` with one string field `s` carrying `rules`, and optionally message rules. */
  function messageWith(
    rules: MessageInitShape<typeof FieldRulesSchema>,
    messageRules?: MessageInitShape<typeof MessageRulesSchema>,
    explicitPresence = false,
  ): DescMessage {
    const options = create(FieldOptionsSchema);
    setExtension(options, fieldRulesExt, create(FieldRulesSchema, rules));
    const messageOptions = create(MessageOptionsSchema);
    if (messageRules) setExtension(messageOptions, messageRulesExt, create(MessageRulesSchema, messageRules));
    const file = create(FileDescriptorProtoSchema, {
      name: "t.proto",
      package: "t",
      syntax: "proto3",
      messageType: [
        {
          name: "M",
          options: messageOptions,
          field: [
            {
              name: "s",
              number: 1,
              jsonName: "s",
              type: FieldDescriptorProto_Type.STRING,
              label: FieldDescriptorProto_Label.OPTIONAL,
              options,
              ...(explicitPresence ? { proto3Optional: true, oneofIndex: 0 } : {}),
            },
          ],
          oneofDecl: explicitPresence ? [{ name: "_s" }] : [],
        },
      ],
    });
    return createFileRegistry(file, () => undefined).getMessage("t.M")!;
  }

  it("compiles the supported string rules", () => {
    const m = messageWith({ type: { case: "string", value: { minLen: 2n, maxLen: 3n, pattern: "^[a-z]+$" } } });
    const check = compilePrecheck(m)!;
    expect(check({ s: "ab" })).toBe(true);
    expect(check({ s: "a" })).toBe(false);
    expect(check({ s: "abcd" })).toBe(false);
    expect(check({ s: "AB" })).toBe(false);
  });

  it.each([
    ["a well-known format other than ip", { type: { case: "string", value: { wellKnown: { case: "email", value: true } } } }],
    ["a prefix rule", { type: { case: "string", value: { prefix: "x" } } }],
    ["a CEL rule", { cel: [{ id: "x", expression: "this.size() > 1" }] }],
    ["a negated character class", { type: { case: "string", value: { pattern: "^[^a]$" } } }],
    ["an inline flag", { type: { case: "string", value: { pattern: "(?i)^a$" } } }],
    ["a class escape", { type: { case: "string", value: { pattern: "^\\w+$" } } }],
    ["required on a scalar", { required: true, type: { case: "string", value: { minLen: 1n } } }],
  ] as const)("compiles to null for %s", (_name, rules) => {
    expect(compilePrecheck(messageWith(rules as MessageInitShape<typeof FieldRulesSchema>))).toBeNull();
  });

  it("compiles to null for rules on an `optional` scalar (unset skips them)", () => {
    const rules = { type: { case: "string", value: { minLen: 1n } } } as const;
    expect(compilePrecheck(messageWith(rules))).not.toBeNull();
    expect(compilePrecheck(messageWith(rules, undefined, true))).toBeNull();
  });

  it("compiles to null for message rules", () => {
    expect(compilePrecheck(messageWith({}, { cel: [{ id: "m", expression: "true" }] }))).toBeNull();
  });
});
