/**
 * --check expressions: `csgmv.ttft_p50 < triton.ttft_p50 * 1.1`. Each side is a RUN.METRIC reference or a number,
 * optionally scaled by `* k` or `/ k`; RUN is a variant name or VARIANT@LEVEL. Parsed up front (so a typo fails
 * before any server starts) and evaluated against the run summaries afterwards.
 */
import { TsloraError } from '../../errors.js';
import { METRIC_NAMES, metricValue } from '../metrics/summarize.js';
import type { RunSummary } from '../metrics/records.js';

export type Comparison = '<' | '<=' | '>' | '>=' | '==' | '!=';

export interface Operand {
  /** null for a plain number */
  ref: { run: string; metric: string } | null;
  constant: number;
  /** multipliers applied left to right: value * f1 * f2 ... (a division is stored as 1/k) */
  factors: number[];
}

export interface CheckExpression {
  source: string;
  left: Operand;
  op: Comparison;
  right: Operand;
}

export interface CheckResult {
  source: string;
  passed: boolean;
  left: number | null;
  right: number | null;
  /** human-readable outcome: "csgmv.ttft_p50 = 12.3 < 14.1 = triton.ttft_p50 * 1.1: ok" */
  message: string;
}

const TOKEN = /\s*(<=|>=|==|!=|<|>|\*|\/|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|[A-Za-z][\w@.-]*)/y;

function usage(source: string, why: string): TsloraError {
  return new TsloraError('usage', `--check "${source}": ${why}.`, {
    hint: `Write RUN.METRIC OP (RUN.METRIC | NUMBER) [* NUMBER], e.g. "csgmv.ttft_p50 < triton.ttft_p50 * 1.1". Metrics: ${METRIC_NAMES.join(', ')}.`,
  });
}

function tokenize(source: string): string[] {
  const tokens: string[] = [];
  TOKEN.lastIndex = 0;
  let position = 0;
  while (position < source.length) {
    if (/^\s*$/.test(source.slice(position))) break;
    TOKEN.lastIndex = position;
    const match = TOKEN.exec(source);
    if (!match) throw usage(source, `unexpected text at '${source.slice(position).trim()}'`);
    tokens.push(match[1]);
    position = TOKEN.lastIndex;
  }
  return tokens;
}

const COMPARISONS = new Set<string>(['<', '<=', '>', '>=', '==', '!=']);
const isNumber = (token: string) => /^(?:\d|\.\d)/.test(token);

function parseOperand(tokens: string[], source: string): Operand {
  const head = tokens.shift();
  if (head === undefined) throw usage(source, 'an operand is missing');
  let operand: Operand;
  if (isNumber(head)) {
    operand = { ref: null, constant: Number(head), factors: [] };
  } else if (/^[A-Za-z]/.test(head)) {
    const dot = head.lastIndexOf('.');
    if (dot <= 0 || dot === head.length - 1) throw usage(source, `'${head}' is not RUN.METRIC`);
    const metric = head.slice(dot + 1);
    if (!(METRIC_NAMES as readonly string[]).includes(metric)) throw usage(source, `unknown metric '${metric}'`);
    operand = { ref: { run: head.slice(0, dot), metric }, constant: 1, factors: [] };
  } else {
    throw usage(source, `expected a RUN.METRIC or a number, got '${head}'`);
  }
  while (tokens[0] === '*' || tokens[0] === '/') {
    const op = tokens.shift();
    const factor = tokens.shift();
    if (factor === undefined || !isNumber(factor)) throw usage(source, `'${op}' must be followed by a number`);
    const value = Number(factor);
    if (op === '/' && value === 0) throw usage(source, 'division by zero');
    operand.factors.push(op === '*' ? value : 1 / value);
  }
  return operand;
}

export function parseCheck(source: string): CheckExpression {
  const tokens = tokenize(source);
  const left = parseOperand(tokens, source);
  const op = tokens.shift();
  if (op === undefined || !COMPARISONS.has(op)) throw usage(source, `expected a comparison (<, <=, >, >=, ==, !=)${op ? `, got '${op}'` : ''}`);
  const right = parseOperand(tokens, source);
  if (tokens.length > 0) throw usage(source, `unexpected '${tokens.join(' ')}' at the end`);
  return { source, left, op: op as Comparison, right };
}

/** Every run name the expression refers to, for validation against the planned runs. */
export function referencedRuns(check: CheckExpression): string[] {
  return [check.left, check.right].flatMap((o) => (o.ref ? [o.ref.run] : []));
}

function operandValue(operand: Operand, runs: ReadonlyMap<string, RunSummary>): number | null {
  let value = operand.constant;
  if (operand.ref) {
    const summary = runs.get(operand.ref.run);
    const metric = summary ? metricValue(summary, operand.ref.metric) : null;
    if (metric === null || !Number.isFinite(metric)) return null;
    value = metric;
  }
  return operand.factors.reduce((v, f) => v * f, value);
}

function compare(a: number, op: Comparison, b: number): boolean {
  switch (op) {
    case '<': return a < b;
    case '<=': return a <= b;
    case '>': return a > b;
    case '>=': return a >= b;
    case '==': return a === b;
    case '!=': return a !== b;
  }
}

const show = (v: number | null) => (v === null ? 'n/a' : Number.isInteger(v) ? String(v) : v.toPrecision(4));

export function evaluateCheck(check: CheckExpression, runs: ReadonlyMap<string, RunSummary>): CheckResult {
  const left = operandValue(check.left, runs);
  const right = operandValue(check.right, runs);
  if (left === null || right === null) {
    const missing = [check.left, check.right].filter((o, i) => o.ref && (i === 0 ? left : right) === null).map((o) => `${o.ref!.run}.${o.ref!.metric}`);
    return { source: check.source, passed: false, left, right, message: `${check.source}: FAILED (no value for ${missing.join(', ')})` };
  }
  const passed = compare(left, check.op, right);
  return { source: check.source, passed, left, right, message: `${check.source}: ${show(left)} ${check.op} ${show(right)} ${passed ? 'ok' : 'FAILED'}` };
}
