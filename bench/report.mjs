// What every bench script reports the same way: the machine line, a scenario run in a fresh process, the Markdown
// tables of ops/s with their ratios, and the JSON file in bench/results/.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';

/** The machine, Node and date, as each table's heading gives them. */
export const machine = () =>
  `${cpus().length} x ${cpus()[0]?.model.trim()}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;

/**
 * Runs `script scenario <workload> <name>` in a fresh process, saying so on stderr, and gives the JSON it prints;
 * undefined when it fails.
 */
export function scenarioInChild(script, label, workload, name, env, timeout) {
  process.stderr.write(`${label} ${workload} ${name} ... `);
  try {
    const out = execFileSync(process.execPath, [script, 'scenario', workload, name], {
      encoding: 'utf8',
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout,
    });
    process.stderr.write('done\n');
    return JSON.parse(out);
  } catch {
    process.stderr.write('failed\n');
    return undefined;
  }
}

/** A table a workload of `rows` ({ workload, name, ops }), each with its ratio to the workload's `base` contestant. */
export function opsTables(workloads, rows) {
  const format = (n) => (n === undefined ? 'failed' : Math.round(n).toLocaleString('en'));
  const lines = [];
  for (const [workload, { unit, base }] of Object.entries(workloads)) {
    const mine = rows.filter((row) => row.workload === workload);
    if (mine.length === 0) continue;
    const reference = mine.find((row) => row.name === base)?.ops;
    lines.push(`\n#### ${workload}: ${unit}\n`, `| contestant | ${unit} | x ${base} |`, '| --- | ---: | ---: |');
    for (const row of mine) {
      const ratio = row.ops && reference ? (row.ops / reference).toFixed(2) : '-';
      lines.push(`| ${row.name} | ${format(row.ops)} | ${ratio} |`);
    }
  }
  return lines;
}

/** Writes `data` to bench/results/<name>-<time>.json (<time>.json without a name) and says where on stderr. */
export function saveResults(name, data) {
  mkdirSync(new URL('results/', import.meta.url), { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = new URL(`results/${name ? `${name}-` : ''}${stamp}.json`, import.meta.url);
  writeFileSync(file, JSON.stringify(data, null, 2));
  process.stderr.write(`results: ${file.pathname}\n`);
}
