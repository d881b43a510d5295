// An optional peer dependency, loaded where an entry first needs it: a user of one entry never installs the
// libraries of the others, and one that lacks its entry's peer is told what to install.
import { errnoOf, shareError } from './errors.js';

/** `require(name)`, or ERR_MISSING_PEER saying that `entry` needs it. */
export function requirePeer<T>(name: string, entry: string): T {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- on first use, as lib/codec.ts loads msgpackr
    return require(name) as T;
  } catch (error) {
    if (errnoOf(error) !== 'MODULE_NOT_FOUND' || !String((error as Error).message).includes(`'${name}'`)) throw error;
    throw shareError('ERR_MISSING_PEER', `${entry} needs the ${name} package, its peer: npm install ${name}`, error);
  }
}
