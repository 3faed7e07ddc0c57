// Time series with uPlot (vendored from npm: appliance/web/vendor/uplot), sized to their container.

import uPlot from "../vendor/uplot/uPlot.esm.js";

const AXIS = { stroke: "#c9d1d9", grid: { stroke: "#30363d", width: 1 }, ticks: { stroke: "#30363d" } };
export const COLOURS = ["#58a6ff", "#f0883e", "#3fb950", "#d2a8ff", "#ff7b72", "#e3b341", "#79c0ff", "#56d364"];

/** A chart in ``container``; ``series``: [{label, colour, dash}], ``y``: {min, max} or null for auto. */
export function timeChart(container, { series, height = 180, y = null, compact = false, yLabel = "" }) {
  const options = {
    width: Math.max(120, container.clientWidth),
    height,
    legend: { show: !compact },
    cursor: { show: !compact },
    scales: { x: { time: true }, y: y ? { range: () => [y.min, y.max] } : { auto: true } },
    axes: compact
      ? [{ show: false }, { show: false }]
      : [{ ...AXIS }, { ...AXIS, label: yLabel, size: 50 }],
    series: [
      {},
      ...series.map((one, i) => ({
        label: one.label,
        stroke: one.colour ?? COLOURS[i % COLOURS.length],
        width: one.width ?? 1.5,
        dash: one.dash,
        spanGaps: false,
        points: { show: false },
      })),
    ],
  };
  const empty = [[], ...series.map(() => [])];
  const plot = new uPlot(options, empty, container);
  const observer = new ResizeObserver(() => {
    if (container.clientWidth > 0) plot.setSize({ width: container.clientWidth, height });
  });
  observer.observe(container);
  return {
    update(data) { plot.setData(data); },
    destroy() { observer.disconnect(); plot.destroy(); },
  };
}
