// One /generate against a demo-model server, as the packaging checks send it: "12+30=" with the add adapter and
// "make me loud=" with upper, greedy. Writes the response body to OUTFILE and prints the texts as JSON (the demo model
// answers ["42","MAKE ME LOUD"]); exit status 1 on a failed request.
// Usage: node scripts/lib/demo-generate.mjs URL OUTFILE
import { writeFileSync } from 'node:fs';

const [url, outFile] = process.argv.slice(2);
try {
  const res = await fetch(`${url}/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text: ['12+30=', 'make me loud='], lora_path: ['add', 'upper'], sampling_params: { max_new_tokens: 16, temperature: 0 } }),
  });
  const body = await res.text();
  writeFileSync(outFile, body);
  console.log(res.status === 200 ? JSON.stringify(JSON.parse(body).map((r) => r.text)) : `HTTP ${res.status}`);
  if (res.status !== 200) process.exitCode = 1;
} catch (error) {
  writeFileSync(outFile, String(error));
  console.log(`request failed: ${error.message}`);
  process.exitCode = 1;
}
