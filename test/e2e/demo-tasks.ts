/**
 * TypeScript mirror of scripts/train-demo/tasks.py: the demo model's tasks, their input generators and exact
 * answers. Generators draw only through Mulberry32.randint, so a seed gives the same inputs as the Python side
 * (demo-tokenizer.test.ts checks this against models/demo/reference.json).
 */

export class Mulberry32 {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform integer in [lo, hi], both ends inclusive. */
  randint(lo: number, hi: number): number {
    return lo + Math.floor((this.nextU32() * (hi - lo + 1)) / 4294967296);
  }
}

const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const DIGITS = '0123456789';
const ECHO_ALPHABET = LOWER + LOWER.toUpperCase() + DIGITS + " .,!?-+*/:;'()";
const DIGIT_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
export const SEPARATOR = '=';

const pick = (rng: Mulberry32, alphabet: string): string => alphabet[rng.randint(0, alphabet.length - 1)];

function words(rng: Mulberry32, minWords: number, maxWords: number, maxWordLen: number): string {
  const n = rng.randint(minWords, maxWords);
  const out: string[] = [];
  for (let w = 0; w < n; w++) {
    const len = rng.randint(1, maxWordLen);
    let word = '';
    for (let i = 0; i < len; i++) word += pick(rng, LOWER);
    out.push(word);
  }
  return out.join(' ');
}

function digitString(rng: Mulberry32, maxLen: number): string {
  const len = rng.randint(1, maxLen);
  let s = '';
  for (let i = 0; i < len; i++) s += pick(rng, DIGITS);
  return s;
}

const numberUpTo = (rng: Mulberry32, maxDigits: number): number => rng.randint(0, 10 ** rng.randint(1, maxDigits) - 1);

function echoInput(rng: Mulberry32): string {
  const kind = rng.randint(0, 3);
  if (kind === 0) {
    const len = rng.randint(1, 20);
    let s = '';
    for (let i = 0; i < len; i++) s += pick(rng, ECHO_ALPHABET);
    return s;
  }
  if (kind === 1) return words(rng, 1, 3, 6);
  if (kind === 2) return digitString(rng, 8);
  return `${numberUpTo(rng, 3)}+${numberUpTo(rng, 3)}`;
}

const caesar3 = (s: string): string =>
  [...s].map((c) => (LOWER.includes(c) ? LOWER[(LOWER.indexOf(c) + 3) % 26] : c)).join('');

interface TaskDef {
  input: (rng: Mulberry32) => string;
  answer: (input: string) => string;
}

/** In the order of tasks.py's TASKS (eval seeds are seed + index). "echo" is the base model's own task. */
export const TASKS: Record<string, TaskDef> = {
  echo: { input: echoInput, answer: (s) => s },
  last_word: { input: (rng) => words(rng, 1, 4, 5), answer: (s) => s.split(' ').at(-1)! },
  spell: { input: (rng) => digitString(rng, 6), answer: (s) => [...s].map((c) => DIGIT_WORDS[Number(c)]).join(' ') },
  reverse: { input: (rng) => words(rng, 1, 3, 6), answer: (s) => [...s].reverse().join('') },
  caesar: { input: (rng) => words(rng, 1, 3, 6), answer: caesar3 },
  upper: { input: (rng) => words(rng, 1, 3, 6), answer: (s) => s.toUpperCase() },
  add: {
    input: (rng) => `${numberUpTo(rng, 3)}+${numberUpTo(rng, 3)}`,
    answer: (s) => String(s.split('+').map(Number).reduce((a, b) => a + b, 0)),
  },
};
export const TASK_NAMES = Object.keys(TASKS);

export interface DemoSample {
  task: string;
  /** The prompt text without BOS: input + '='. */
  prompt: string;
  expected: string;
}

/** n samples of `task` from Mulberry32(seed + index of the task), exactly as evaluate.py draws them. */
export function demoSamples(task: string, n: number, seed: number): DemoSample[] {
  const rng = new Mulberry32(seed + TASK_NAMES.indexOf(task));
  const def = TASKS[task];
  const out: DemoSample[] = [];
  for (let i = 0; i < n; i++) {
    const input = def.input(rng);
    out.push({ task, prompt: input + SEPARATOR, expected: def.answer(input) });
  }
  return out;
}
