/** Grouped bar charts as SVG, for the benchmarks' results (bench/results/*.svg, shown in docs/performance.md). */

export interface BarSeries {
  label: string;
  color: string;
}

export interface BarChart {
  title: string;
  subtitle: string;
  groups: string[];
  series: BarSeries[];
  /** values[group][series]; NaN or undefined: no bar. */
  values: (number | undefined)[][];
  /** Log scale: values spanning decades stay readable. */
  log?: boolean;
  /** Digits after the point on the bars' labels. */
  digits?: number;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const trim = (v: number) => (Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(2))));

/** A linear axis's step: 1, 2 or 5 × 10^k, about five of them up to `max`. */
function linearStep(max: number): number {
  const power = 10 ** Math.floor(Math.log10(max / 5));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= max / 5)!;
}

/** Gridlines of a log axis (1, 2, 5 per decade) or a linear one (every step). */
function ticks(lo: number, hi: number, log: boolean): number[] {
  const out: number[] = [];
  if (log) {
    for (let decade = lo; decade <= hi; decade *= 10) for (const step of [1, 2, 5]) if (decade * step <= hi) out.push(decade * step);
    return out;
  }
  const step = linearStep(hi);
  for (let v = 0; v <= hi * (1 + 1e-9); v += step) out.push(v);
  return out;
}

export function groupedBarsSvg(chart: BarChart): string {
  const width = 720,
    height = 400;
  const margin = { left: 64, right: 16, top: 48, bottom: 72 };
  const plotW = width - margin.left - margin.right,
    plotH = height - margin.top - margin.bottom;
  const values = chart.values.flat().filter((v): v is number => v !== undefined && Number.isFinite(v) && v > 0);
  const log = chart.log ?? false;
  const lo = log ? 10 ** Math.floor(Math.log10(Math.min(1, ...values))) : 0;
  const max = Math.max(log ? 10 : 1e-9, ...values);
  const hi = log ? 10 ** Math.ceil(Math.log10(max)) : Math.ceil((max * 1.08) / linearStep(max * 1.08)) * linearStep(max * 1.08);
  const scale = (v: number) => (log ? (Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : v / hi);
  const y = (v: number) => margin.top + plotH - scale(v) * plotH;
  const group = plotW / chart.groups.length;
  const bar = (group * 0.7) / chart.series.length;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(chart.title)}</text>`,
    `<text x="${width / 2}" y="38" text-anchor="middle" fill="#555">${esc(chart.subtitle)}</text>`,
  ];
  for (const v of ticks(lo, hi, log)) {
    out.push(`<line x1="${margin.left}" x2="${width - margin.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${margin.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#333">${trim(v)}</text>`);
  }
  out.push(`<line x1="${margin.left}" x2="${margin.left}" y1="${margin.top}" y2="${margin.top + plotH}" stroke="#333"/>`);
  out.push(`<line x1="${margin.left}" x2="${width - margin.right}" y1="${margin.top + plotH}" y2="${margin.top + plotH}" stroke="#333"/>`);
  chart.groups.forEach((name, gi) => {
    const x0 = margin.left + gi * group + group * 0.15;
    chart.series.forEach((s, si) => {
      const v = chart.values[gi]?.[si];
      if (v === undefined || !Number.isFinite(v)) return;
      const x = x0 + si * bar;
      out.push(
        `<rect x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(bar - 2).toFixed(1)}" height="${(margin.top + plotH - y(v)).toFixed(1)}" fill="${s.color}"><title>${esc(`${s.label}, ${name}: ${v}`)}</title></rect>`,
      );
      out.push(
        `<text x="${(x + bar / 2 - 1).toFixed(1)}" y="${(y(v) - 3).toFixed(1)}" text-anchor="middle" font-size="9" fill="#333">${v.toFixed(chart.digits ?? 1)}</text>`,
      );
    });
    out.push(
      `<text x="${(margin.left + gi * group + group / 2).toFixed(1)}" y="${margin.top + plotH + 18}" text-anchor="middle">${esc(name)}</text>`,
    );
  });
  chart.series.forEach((s, i) => {
    const x = margin.left + i * 170,
      ly = height - 22;
    out.push(`<rect x="${x}" y="${ly - 10}" width="12" height="12" fill="${s.color}"/>`);
    out.push(`<text x="${x + 18}" y="${ly}">${esc(s.label)}</text>`);
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
