// The package ships no types; the tests cast its result to the metric families they read.
declare module 'parse-prometheus-text-format' {
  export default function parsePrometheusTextFormat(text: string): unknown;
}
