// `npm run stress`: the reliability suites, each ending with one figure line. Flags make them bigger:
//   --kills 5000  --queue-kills 2000  --processes 8  --updates 10000  --cases 10000  --corruptions 2000  --cycles 10000  --lock-rounds 300
//   --crash-kills 17 (occurrences of each named crash point killed, test/crash-points.test.ts)  --bell-sets 1000000
//   --soak-seconds 300 (the SharedQueue soak)
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';

const flags = [
  'kills',
  'queue-kills',
  'processes',
  'updates',
  'cases',
  'corruptions',
  'cycles',
  'lock-rounds',
  'crash-kills',
  'bell-sets',
  'soak-seconds',
];
const { values } = parseArgs({ options: Object.fromEntries(flags.map((flag) => [flag, { type: 'string' }])) });
const env = { ...process.env };
for (const [flag, value] of Object.entries(values)) env[`STRESS_${flag.replaceAll('-', '_').toUpperCase()}`] = value;

const suites = ['test/stress', 'test/errors.test.ts', 'test/crash-points.test.ts'];
const vitest = ['vitest', 'run', ...suites, '--reporter=verbose', '--testTimeout=0'];
const { status } = spawnSync('npx', vitest, { stdio: 'inherit', env });
process.exit(status ?? 1);
