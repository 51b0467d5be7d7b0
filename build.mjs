// Builds the single executable (esbuild bundle + Node SEA from the pinned Node 24 binary) and
// the managed plugin: dist/plugin/{config.json,rootfs/} and a tarball of it.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(root, 'dist');
const version = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version;
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

function step(message) {
  process.stdout.write(`build: ${message}\n`);
}

function checkNode() {
  const major = Number(process.versions.node.split('.')[0]);
  if (major !== 24) {
    throw new Error(`build.mjs must run under the pinned Node 24 (found ${process.version} at ${process.execPath}); run it as \`npm run build\``);
  }
}

async function bundle() {
  const outfile = path.join(dist, 'cvmfs-graphdriver.cjs');
  await esbuild.build({
    entryPoints: [path.join(root, 'src/main.ts')],
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'cjs',
    outfile,
    legalComments: 'none',
    logLevel: 'warning',
  });
  return outfile;
}

async function buildExecutable(bundlePath) {
  const blob = path.join(dist, 'sea.blob');
  const seaConfig = path.join(dist, 'sea-config.json');
  fs.writeFileSync(seaConfig, JSON.stringify({ main: bundlePath, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true, execArgv: ['--max-semi-space-size=4'] }));
  execFileSync(process.execPath, ['--experimental-sea-config', seaConfig], { stdio: 'inherit' });
  const executable = path.join(dist, 'cvmfs-graphdriver');
  fs.rmSync(executable, { force: true });
  fs.copyFileSync(process.execPath, executable);
  // Strip before injecting: the debug info is most of the binary, and stripping afterwards
  // would drop the injected blob.
  execFileSync('strip', ['--strip-all', executable], { stdio: ['ignore', 'ignore', 'pipe'] });
  // postject's ELF library prints harmless warnings about note sections by the dozen; they are
  // shown only if the injection fails.
  const postject = path.join(root, 'node_modules/postject/dist/cli.js');
  const injected = spawnSync(process.execPath, [postject, executable, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE], { encoding: 'utf8' });
  if (injected.status !== 0) throw new Error(`postject failed:\n${injected.stdout}${injected.stderr}`);
  fs.chmodSync(executable, 0o755);
  fs.rmSync(blob);
  fs.rmSync(seaConfig);
  return executable;
}

function sharedLibraries(binary) {
  const output = execFileSync('ldd', [binary], { encoding: 'utf8' });
  return [...output.matchAll(/(\/\S+\.so[^\s]*)/g)].map((m) => m[1]);
}

function copyIntoRootfs(rootfs, hostPath, targetPath = hostPath) {
  const destination = path.join(rootfs, targetPath);
  fs.mkdirSync(path.dirname(destination), { recursive: true });
  fs.copyFileSync(fs.realpathSync(hostPath), destination);
  fs.chmodSync(destination, fs.statSync(hostPath).mode & 0o777);
}

function which(program) {
  for (const dir of ['/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    const candidate = path.join(dir, program);
    if (fs.existsSync(candidate)) return candidate;
  }
  const debianPackage = { busybox: 'busybox-static', perl: 'perl-base' }[program] ?? 'attr';
  throw new Error(`${program} is needed in the plugin rootfs but is not installed (apt-get install ${debianPackage})`);
}

function buildPlugin(executable) {
  const pluginDir = path.join(dist, 'plugin');
  const rootfs = path.join(pluginDir, 'rootfs');
  fs.rmSync(pluginDir, { recursive: true, force: true });
  for (const dir of ['dev', 'proc', 'sys', 'tmp', 'mnt', 'etc/cvmfs', 'cvmfs_ext_config', 'run/docker/plugins', 'var/lib/cvmfs-graphdriver', 'var/log/cvmfs-graphdriver', 'bin', 'usr/bin']) {
    fs.mkdirSync(path.join(rootfs, dir), { recursive: true });
  }
  fs.chmodSync(path.join(rootfs, 'tmp'), 0o1777);
  copyIntoRootfs(rootfs, executable, '/usr/bin/cvmfs-graphdriver');
  // busybox gives mount, umount, mknod and sh; the attr tools read and write xattrs.
  const busybox = which('busybox');
  copyIntoRootfs(rootfs, busybox, '/bin/busybox');
  for (const applet of ['sh', 'mount', 'umount', 'mknod', 'ls', 'cat', 'rm', 'mkdir']) {
    fs.symlinkSync('busybox', path.join(rootfs, 'bin', applet));
  }
  // perl registers the files the kernel reads directly (FUSE passthrough); see src/core/fuse/backing-files.ts.
  const helpers = [which('getfattr'), which('setfattr'), which('perl')];
  for (const helper of helpers) copyIntoRootfs(rootfs, helper, path.join('/usr/bin', path.basename(helper)));
  const libraries = new Set([executable, ...helpers].flatMap(sharedLibraries));
  for (const library of libraries) copyIntoRootfs(rootfs, library);
  fs.copyFileSync(path.join(root, 'plugin/config.json'), path.join(pluginDir, 'config.json'));
  const tarball = path.join(dist, `cvmfs-graphdriver-plugin-${version}.tar.gz`);
  execFileSync('tar', ['-czf', tarball, '-C', dist, 'plugin']);
  return { pluginDir, tarball };
}

checkNode();
fs.mkdirSync(dist, { recursive: true });
const started = Date.now();
step('bundling src/main.ts');
const bundlePath = await bundle();
step(`building the single executable from Node ${process.version}`);
const executable = await buildExecutable(bundlePath);
step('assembling the managed plugin');
const { pluginDir, tarball } = buildPlugin(executable);
step(`done in ${((Date.now() - started) / 1000).toFixed(1)} s: ${path.relative(root, executable)}, ${path.relative(root, pluginDir)}/, ${path.relative(root, tarball)}`);
