// Rewrites a CUDA source for the host emulator (cuda-emu.h): kernel launches `k<<<cfg>>>(args)` become
// `emu::launch(cfg, [=]() { k(args); })`, `extern __shared__ [__align__(n)] T name[];` becomes a pointer to the
// launch's dynamic shared memory, and <mma.h> is dropped (the emulator provides nvcuda::wmma).
// CLI: node transform.mjs IN.cu OUT.cpp
import { readFileSync, writeFileSync } from 'node:fs';

function matchBackward(src, end, open, close) {
  // src[end] === close; returns the index of the matching open.
  let depth = 0;
  for (let i = end; i >= 0; i--) {
    if (src[i] === close) depth++;
    else if (src[i] === open && --depth === 0) return i;
  }
  throw new Error(`unbalanced ${open}${close} before offset ${end}`);
}

function matchForward(src, start, open, close) {
  let depth = 0;
  for (let i = start; i < src.length; i++) {
    if (src[i] === open) depth++;
    else if (src[i] === close && --depth === 0) return i;
  }
  throw new Error(`unbalanced ${open}${close} after offset ${start}`);
}

export function transformCuda(src) {
  let out = src.replace(/#include\s*<mma\.h>\s*\n/g, '');
  out = out.replace(/extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?([\w\s]+?)\s+(\w+)\[\];/g,
    (_, type, name) => `${type}* ${name} = reinterpret_cast<${type}*>(EMU_DYNAMIC_SMEM);`);
  for (;;) {
    const at = out.indexOf('<<<');
    if (at < 0) break;
    // Callee: an identifier, optionally with template arguments, right before <<<.
    let calleeStart = at;
    if (out[at - 1] === '>') calleeStart = matchBackward(out, at - 1, '<', '>');
    while (calleeStart > 0 && /[\w:]/.test(out[calleeStart - 1])) calleeStart--;
    const callee = out.slice(calleeStart, at);
    const cfgEnd = out.indexOf('>>>', at);
    const cfg = out.slice(at + 3, cfgEnd);
    const argsOpen = cfgEnd + 3;
    if (out[argsOpen] !== '(') throw new Error(`expected ( after >>> at ${argsOpen}`);
    const argsClose = matchForward(out, argsOpen, '(', ')');
    const args = out.slice(argsOpen + 1, argsClose);
    out = `${out.slice(0, calleeStart)}emu::launch(${cfg}, [=]() { ${callee}(${args}); })${out.slice(argsClose + 1)}`;
  }
  return out;
}

if (process.argv[1] && process.argv[1].endsWith('transform.mjs') && process.argv.length === 4) {
  writeFileSync(process.argv[3], transformCuda(readFileSync(process.argv[2], 'utf8')));
}
