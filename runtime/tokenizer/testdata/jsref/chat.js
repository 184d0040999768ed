// Renders chat templates with @huggingface/jinja for runtime/chat tests.
// stdin: [{template, context}]; stdout: [{output} | {error}].
import { Template } from "@huggingface/jinja";
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map(({ template, context }) => {
  try {
    return { output: new Template(template).render(context) };
  } catch (e) {
    return { error: String(e.message) };
  }
});
process.stdout.write(JSON.stringify(out));
