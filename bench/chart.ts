/**
 * The chart of docs/benchmarks.md, written by hand as SVG: end-to-end latency percentiles (y, ms,
 * log scale) against deliveries per second (x). One colour per percentile; one marker shape per
 * series; a series with `line` joins its points in order of x.
 */

export interface ChartPoint {
  deliveries_per_s: number;
  p50: number;
  p99: number;
  p999: number;
}

export interface ChartSeries {
  name: string;
  points: ChartPoint[];
  line: boolean;
}

const WIDTH = 760;
const HEIGHT = 420;
const PAD = { left: 64, right: 180, top: 36, bottom: 52 };
const PERCENTILES = [
  { key: "p50", label: "p50", color: "#1f77b4" },
  { key: "p99", label: "p99", color: "#ff7f0e" },
  { key: "p999", label: "p99.9", color: "#d62728" },
] as const;

const escape = (text: string) =>
  text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");

const fmt = (v: number) => Number(v.toFixed(1)).toString();

/** A round upper bound for the x axis and its tick step. */
function niceAxis(max: number): { max: number; step: number } {
  const raw = Math.max(max, 1) / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw)!;
  return { max: Math.ceil(Math.max(max, 1) / step) * step, step };
}

function marker(shape: number, x: number, y: number, color: string): string {
  const r = 4;
  switch (shape % 3) {
    case 0:
      return `<circle cx="${fmt(x)}" cy="${fmt(y)}" r="${r}" fill="${color}"/>`;
    case 1:
      return `<rect x="${fmt(x - r)}" y="${fmt(y - r)}" width="${2 * r}" height="${
        2 * r
      }" fill="${color}"/>`;
    default:
      return `<path d="M${fmt(x)} ${fmt(y - r - 1)}L${fmt(x + r + 1)} ${fmt(y + r)}L${
        fmt(x - r - 1)
      } ${fmt(y + r)}Z" fill="${color}"/>`;
  }
}

export function latencyChart(series: ChartSeries[], title: string): string {
  const points = series.flatMap((s) => s.points);
  const values = points.flatMap((p) => [p.p50, p.p99, p.p999]).filter((v) => v > 0);
  const lo = Math.floor(Math.log10(values.length ? Math.min(...values) : 1));
  const hi = Math.ceil(Math.log10(values.length ? Math.max(...values) : 10));
  const yMin = 10 ** lo;
  const yMax = 10 ** Math.max(hi, lo + 1);
  const x = niceAxis(Math.max(0, ...points.map((p) => p.deliveries_per_s)));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const px = (v: number) => PAD.left + (v / x.max) * plotW;
  const py = (v: number) =>
    PAD.top + plotH -
    ((Math.log10(Math.max(v, yMin)) - Math.log10(yMin)) / Math.log10(yMax / yMin)) * plotH;

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${PAD.left}" y="22" font-size="14" font-weight="bold">${escape(title)}</text>`,
  ];
  // Axes and grid: decades on y, round steps on x.
  for (let e = Math.log10(yMin); e <= Math.log10(yMax); e++) {
    const v = 10 ** e;
    const y = py(v);
    out.push(
      `<line x1="${PAD.left}" y1="${fmt(y)}" x2="${PAD.left + plotW}" y2="${
        fmt(y)
      }" stroke="#dddddd"/>`,
      `<text x="${PAD.left - 6}" y="${fmt(y + 4)}" text-anchor="end">${
        e < 0 ? v.toFixed(-e) : v
      }</text>`,
    );
  }
  for (let v = 0; v <= x.max + x.step / 2; v += x.step) {
    const xx = px(v);
    out.push(
      `<line x1="${fmt(xx)}" y1="${PAD.top}" x2="${fmt(xx)}" y2="${
        PAD.top + plotH
      }" stroke="#eeeeee"/>`,
      `<text x="${fmt(xx)}" y="${PAD.top + plotH + 18}" text-anchor="middle">${
        v.toLocaleString("en-US")
      }</text>`,
    );
  }
  out.push(
    `<rect x="${PAD.left}" y="${PAD.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333333"/>`,
    `<text x="${PAD.left + plotW / 2}" y="${
      HEIGHT - 12
    }" text-anchor="middle">deliveries per second</text>`,
    `<text transform="translate(16 ${
      PAD.top + plotH / 2
    }) rotate(-90)" text-anchor="middle">end-to-end latency, ms (log scale)</text>`,
  );
  series.forEach((s, shape) => {
    const sorted = [...s.points].sort((a, b) => a.deliveries_per_s - b.deliveries_per_s);
    for (const pct of PERCENTILES) {
      const xy = sorted.filter((p) => p[pct.key] > 0).map((p) =>
        [px(p.deliveries_per_s), py(p[pct.key])] as const
      );
      if (s.line && xy.length > 1) {
        out.push(
          `<polyline fill="none" stroke="${pct.color}" stroke-width="2" points="${
            xy.map(([a, b]) => `${fmt(a)},${fmt(b)}`).join(" ")
          }"/>`,
        );
      }
      for (const [a, b] of xy) out.push(marker(shape, a, b, pct.color));
    }
  });
  // Legend: colours for percentiles, shapes for series.
  const lx = PAD.left + plotW + 16;
  let ly = PAD.top + 10;
  for (const pct of PERCENTILES) {
    out.push(
      `<line x1="${lx}" y1="${ly}" x2="${
        lx + 22
      }" y2="${ly}" stroke="${pct.color}" stroke-width="2"/>`,
      `<text x="${lx + 28}" y="${ly + 4}">${pct.label}</text>`,
    );
    ly += 20;
  }
  ly += 8;
  series.forEach((s, shape) => {
    out.push(
      marker(shape, lx + 11, ly, "#555555"),
      `<text x="${lx + 28}" y="${ly + 4}">${escape(s.name)}</text>`,
    );
    ly += 20;
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
