// Uses of the API that must not compile: tsc fails unless each line
// after an expect-error directive is an error. This keeps the
// declarations from accepting anything (an `any` would).
import * as mode from "../../web/mode.js";

export async function misuse(engine: mode.Engine): Promise<void> {
  // @ts-expect-error model is required
  await mode.create({});
  // @ts-expect-error no such backend
  await mode.create({ model: "m", backend: "tpu" });
  // @ts-expect-error no such cache
  await mode.create({ model: "m", cache: "disk" });
  // @ts-expect-error a chat takes messages, not a prompt
  await engine.chat.completions.create({ prompt: "hi" });

  const whole = await engine.completions.create({ prompt: "hi" });
  // @ts-expect-error a result is not iterable
  for await (const c of whole) void c;

  for await (const c of await engine.chat.completions.create({ messages: [], stream: true })) {
    // @ts-expect-error a chunk has a delta, not a message
    void c.choices[0].message;
  }
  const err = new mode.ModeError({ code: "busy" });
  // @ts-expect-error not an error code
  const code: typeof err.code = "oops";
  void code;
}
