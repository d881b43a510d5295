// What every bench script reads the same way: its command line (--quick, --name=a,b) and the CPU a process spent.
import { readFileSync } from 'node:fs';

/** The flags given, `--name=value` as { name: 'value' }, a bare `--name` as { name: undefined }. */
export const flags = Object.fromEntries(process.argv.slice(2).map((arg) => arg.replace(/^--/, '').split('=')));

/** The comma-separated values of `--flag`, or `all` when it is not given. */
export const pick = (flag, all) => (flags[flag] ? flags[flag].split(',') : all);

// The fields of /proc/<pid>/stat after the command name: field n of proc(5) at n - 3.
const statOf = (pid) => readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1].split(' ');

/** Clock ticks of user and system time the processes spent. */
export const cpuTicks = (children) =>
  children.reduce((sum, { pid }) => {
    const fields = statOf(pid);
    return sum + Number(fields[11]) + Number(fields[12]);
  }, 0);

/** Clock ticks (10 ms each) this process spent, with those of the children it has waited for after they exited. */
export const waitedTicks = () =>
  statOf(process.pid)
    .slice(11, 15)
    .reduce((sum, ticks) => sum + Number(ticks), 0);
