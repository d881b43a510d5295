// What every bench script reads the same way: its command line (--quick, --name=a,b) and the CPU a process spent.
import { readFileSync } from 'node:fs';

/** The flags given, `--name=value` as { name: 'value' }, a bare `--name` as { name: undefined }. */
export const flags = Object.fromEntries(process.argv.slice(2).map((arg) => arg.replace(/^--/, '').split('=')));

/** The comma-separated values of `--flag`, or `all` when it is not given. */
export const pick = (flag, all) => (flags[flag] ? flags[flag].split(',') : all);

/** Clock ticks of user and system time the processes spent. */
export const cpuTicks = (children) =>
  children.reduce((sum, { pid }) => {
    const fields = readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1].split(' ');
    return sum + Number(fields[11]) + Number(fields[12]);
  }, 0);
