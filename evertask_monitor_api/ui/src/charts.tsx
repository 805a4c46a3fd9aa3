// Small SVG charts (no chart library): stacked bars, grouped bars, a line, horizontal bars.

import type { Tone } from "./format";

const W = 640;
const H = 200;
const PAD = { top: 10, right: 10, bottom: 24, left: 40 };
/** Generous width of one character of the 10px axis font, in viewBox units. */
const CHAR_W = 6.5;

type Pad = typeof PAD;

/** A tick value with at most 3 significant digits (0.075 stays 0.075, not 0.1). */
function tickText(value: number, unit?: string): string {
  return `${Number.isInteger(value) ? value : Number.parseFloat(value.toPrecision(3))}${unit ?? ""}`;
}

const TICKS = [0, 0.25, 0.5, 0.75, 1];

/** Padding wide enough for the longest y tick and for x labels centred on the edges, so
 * no label is cut off by the SVG's bounds. */
function padFor(max: number, unit: string | undefined, edgeLabels: string[] = []): Pad {
  const widest = (texts: string[]) => Math.max(0, ...texts.map((t) => t.length * CHAR_W));
  const ticks = widest(TICKS.map((t) => tickText(max * t, unit)));
  const edge = widest(edgeLabels) / 2 + 2;
  return { ...PAD, left: Math.max(PAD.left, ticks + 10, edge), right: Math.max(PAD.right, edge) };
}

export interface Part {
  name: string;
  value: number;
  tone: Tone;
}

function niceMax(value: number): number {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * magnitude) return step * magnitude;
  }
  return 10 * magnitude;
}

function Axis({ max, unit, pad = PAD }: { max: number; unit?: string; pad?: Pad }) {
  const plotH = H - pad.top - pad.bottom;
  return (
    <g className="axis">
      {TICKS.map((t) => {
        const y = pad.top + plotH * (1 - t);
        return (
          <g key={t}>
            <line x1={pad.left} x2={W - pad.right} y1={y} y2={y} className="grid" />
            <text x={pad.left - 6} y={y + 4} textAnchor="end">
              {tickText(max * t, unit)}
            </text>
          </g>
        );
      })}
    </g>
  );
}

function labelEvery(count: number): number {
  return Math.max(1, Math.ceil(count / 8));
}

/** One bar per bucket, its parts stacked. */
export function StackedBars({ buckets, label }: { buckets: { label: string; parts: Part[] }[]; label: string }) {
  const max = niceMax(Math.max(0, ...buckets.map((b) => b.parts.reduce((s, p) => s + p.value, 0))));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(1, buckets.length);
  const every = labelEvery(buckets.length);
  return (
    <svg viewBox={`0 0 ${W} ${H}`} className="chart" role="img" aria-label={label}>
      <Axis max={max} />
      {buckets.map((bucket, i) => {
        let y = PAD.top + plotH;
        const x = PAD.left + i * slot + slot * 0.15;
        return (
          <g key={i}>
            {bucket.parts.map((part) => {
              const h = (part.value / max) * plotH;
              y -= h;
              return (
                <rect key={part.name} x={x} y={y} width={slot * 0.7} height={h} className={`tone-${part.tone}`}>
                  <title>{`${bucket.label} — ${part.name}: ${part.value}`}</title>
                </rect>
              );
            })}
            {i % every === 0 && (
              <text x={x + slot * 0.35} y={H - 6} textAnchor="middle" className="tick">
                {bucket.label}
              </text>
            )}
          </g>
        );
      })}
    </svg>
  );
}

/** Groups of side-by-side bars (one group per label). */
export function GroupedBars({ groups, label }: { groups: { label: string; parts: Part[] }[]; label: string }) {
  const max = niceMax(Math.max(0, ...groups.flatMap((g) => g.parts.map((p) => p.value))));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(1, groups.length);
  return (
    <svg viewBox={`0 0 ${W} ${H}`} className="chart" role="img" aria-label={label}>
      <Axis max={max} />
      {groups.map((group, i) => {
        const inner = (slot * 0.8) / Math.max(1, group.parts.length);
        return (
          <g key={group.label}>
            {group.parts.map((part, j) => {
              const h = (part.value / max) * plotH;
              return (
                <rect
                  key={part.name}
                  x={PAD.left + i * slot + slot * 0.1 + j * inner}
                  y={PAD.top + plotH - h}
                  width={inner * 0.9}
                  height={h}
                  className={`tone-${part.tone}`}
                >
                  <title>{`${group.label} — ${part.name}: ${part.value}`}</title>
                </rect>
              );
            })}
            <text x={PAD.left + i * slot + slot / 2} y={H - 6} textAnchor="middle" className="tick">
              {group.label}
            </text>
          </g>
        );
      })}
    </svg>
  );
}

/** A line through the points that have a value (gaps where they do not). */
export function LineChart({
  points,
  label,
  unit,
  fixedMax,
}: {
  points: { label: string; value: number | null }[];
  label: string;
  unit?: string;
  fixedMax?: number;
}) {
  const values = points.map((p) => p.value).filter((v): v is number => v !== null);
  const max = fixedMax ?? niceMax(Math.max(0, ...values));
  const every = labelEvery(points.length);
  const shown = points.filter((_, i) => i % every === 0).map((p) => p.label);
  const PAD = padFor(max, unit, shown);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const step = points.length > 1 ? plotW / (points.length - 1) : 0;
  const xy = (i: number, v: number) => [PAD.left + i * step, PAD.top + plotH * (1 - v / max)] as const;
  const segments: string[] = [];
  let current = "";
  points.forEach((p, i) => {
    if (p.value === null) {
      if (current) segments.push(current);
      current = "";
      return;
    }
    const [x, y] = xy(i, p.value);
    current += `${current ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)} `;
  });
  if (current) segments.push(current);
  return (
    <svg viewBox={`0 0 ${W} ${H}`} className="chart" role="img" aria-label={label}>
      <Axis max={max} unit={unit} pad={PAD} />
      {segments.map((d, i) => (
        <path key={i} d={d} className="line" />
      ))}
      {points.map((p, i) =>
        p.value === null ? null : (
          <circle key={i} cx={xy(i, p.value)[0]} cy={xy(i, p.value)[1]} r={3} className="dot">
            <title>{`${p.label}: ${p.value.toFixed(2)}${unit ?? ""}`}</title>
          </circle>
        ),
      )}
      {points.map((p, i) =>
        i % every === 0 ? (
          <text key={`l${i}`} x={PAD.left + i * step} y={H - 6} textAnchor="middle" className="tick">
            {p.label}
          </text>
        ) : null,
      )}
    </svg>
  );
}

/** Horizontal bars with their values, for distributions. */
export function HBars({ rows, testId }: { rows: { label: string; value: number; tone: Tone }[]; testId?: string }) {
  const max = Math.max(1, ...rows.map((r) => r.value));
  return (
    <div className="hbars" data-testid={testId}>
      {rows.map((row) => (
        <div className="hbar" key={row.label} data-testid={testId ? `${testId}-${row.label}` : undefined}>
          <span className="hbar-label">{row.label}</span>
          <svg viewBox="0 0 100 10" preserveAspectRatio="none" className="hbar-track">
            <rect x={0} y={0} width={(row.value / max) * 100} height={10} className={`tone-${row.tone}`} />
          </svg>
          <span className="hbar-value" data-testid="value">
            {row.value.toLocaleString()}
          </span>
        </div>
      ))}
    </div>
  );
}

export function Legend({ items }: { items: { name: string; tone: Tone }[] }) {
  return (
    <div className="legend">
      {items.map((item) => (
        <span key={item.name}>
          <svg viewBox="0 0 10 10" className="swatch">
            <rect width={10} height={10} className={`tone-${item.tone}`} />
          </svg>
          {item.name}
        </span>
      ))}
    </div>
  );
}
