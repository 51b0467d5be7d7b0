// A network namespace of its own for the benchmark's servers, joined to this host by a veth
// pair: their traffic crosses a real (virtual) link instead of loopback, and the shaping proxy
// in this namespace is the only way to them.
import { randomBytes } from 'node:crypto';
import { run, type ServerPlace } from '../../test/helpers/process.ts';

export interface ServerNamespace extends ServerPlace {
  readonly name: string;
  /** Deletes the namespace and its link; stop the servers in it first. */
  remove(): Promise<void>;
}

export async function createServerNamespace(): Promise<ServerNamespace> {
  const id = randomBytes(3).toString('hex');
  const name = `cvmfsgd-bench-${id}`;
  // A /30 per namespace from 10.231/16, picked by the name so concurrent runs rarely collide.
  const subnet = `10.231.${parseInt(id.slice(0, 2), 16)}.${(parseInt(id.slice(2, 4), 16) & 0x3f) * 4}`;
  const [a, b, c, d] = subnet.split('.').map(Number);
  const hostAddress = `${a}.${b}.${c}.${d! + 1}`;
  const address = `${a}.${b}.${c}.${d! + 2}`;
  const hostEnd = `vh-${id}`;
  const nsEnd = `vn-${id}`;
  await run('ip', ['netns', 'add', name]);
  try {
    await run('ip', ['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', nsEnd]);
    await run('ip', ['link', 'set', nsEnd, 'netns', name]);
    await run('ip', ['addr', 'add', `${hostAddress}/30`, 'dev', hostEnd]);
    await run('ip', ['link', 'set', hostEnd, 'up']);
    for (const args of [['addr', 'add', `${address}/30`, 'dev', nsEnd], ['link', 'set', nsEnd, 'up'], ['link', 'set', 'lo', 'up']]) {
      await run('ip', ['netns', 'exec', name, 'ip', ...args]);
    }
  } catch (error) {
    await run('ip', ['netns', 'del', name], { allowFail: true });
    throw error;
  }
  return {
    name,
    address,
    command: (command, args) => ['ip', ['netns', 'exec', name, command, ...args]],
    // Deleting the namespace deletes its end of the pair, and with it the host's end.
    remove: async () => { await run('ip', ['netns', 'del', name]); },
  };
}
