#!/usr/bin/env python3
"""The driver layer's manifest (kernel-modules/build-driver-layer.sh).

  driver-layer-manifest.py write TREE --out FILE --info FILE --packages FILE
                                [--image IMAGE]
      Writes the manifest of TREE as JSON to FILE: the fields of --info
      (KEY=value lines: key, driver_version, kernel_release, glibc_min, ...),
      the packages (--packages: "NAME VERSION SHA256 ARCHIVE" lines), the
      patches (--info "patch=NAME SHA256" lines, repeatable), the modules
      (modinfo vermagic/version/depends of every .ko), the firmware files,
      the image (path, size, sha256) and every file of TREE: path, type
      (dir, file, symlink), mode, and size + sha256 or the link target.
      Sorted, no timestamps: the same tree gives the same manifest.

  driver-layer-manifest.py check TREE MANIFEST
      Compares TREE (the layer's tree, or a copy extracted from the image)
      with the manifest's file list: same paths, types, modes, sizes,
      sha256s and link targets. Prints each difference; exit 1 if any.

  driver-layer-manifest.py files TREE
      Prints TREE's file list (JSON), as the manifest holds it.
"""
import argparse
import hashlib
import json
import os
import stat
import subprocess
import sys

FORMAT = 1


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def file_list(tree):
    """Every entry below TREE (not TREE itself), sorted by path."""
    out = []
    for root, dirs, files in os.walk(tree):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, tree)
            st = os.lstat(full)
            mode = '%04o' % stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out.append({'path': rel, 'type': 'symlink', 'target': os.readlink(full)})
            elif stat.S_ISDIR(st.st_mode):
                out.append({'path': rel, 'type': 'dir', 'mode': mode})
            elif stat.S_ISREG(st.st_mode):
                out.append({'path': rel, 'type': 'file', 'mode': mode, 'size': st.st_size,
                            'sha256': sha256_file(full)})
            else:
                out.append({'path': rel, 'type': 'other', 'mode': mode})
    out.sort(key=lambda e: e['path'])
    return out


def modinfo(ko, field):
    r = subprocess.run(['modinfo', '-F', field, ko], capture_output=True, text=True, check=True)
    return r.stdout.strip()


def cmd_write(a):
    info = {}
    patches = []
    with open(a.info) as f:
        for line in f:
            line = line.rstrip('\n')
            if not line or line.startswith('#'):
                continue
            k, _, v = line.partition('=')
            if k == 'patch':
                name, sha = v.split()
                patches.append({'name': name, 'sha256': sha})
            else:
                info[k] = v
    packages = []
    with open(a.packages) as f:
        for line in f:
            if line.strip():
                name, version, sha, archive = line.split()
                packages.append({'name': name, 'version': version, 'sha256': sha, 'archive': archive})
    files = file_list(a.tree)
    modules = []
    firmware = []
    for e in files:
        if e['type'] == 'file' and e['path'].endswith('.ko'):
            ko = os.path.join(a.tree, e['path'])
            deps = modinfo(ko, 'depends')
            modules.append({'name': os.path.basename(e['path'])[:-3], 'path': e['path'],
                            'vermagic': modinfo(ko, 'vermagic'), 'version': modinfo(ko, 'version'),
                            'depends': [d for d in deps.split(',') if d]})
        elif e['type'] == 'file' and e['path'].startswith('lib/firmware/'):
            firmware.append(e['path'])
    m = {'format': FORMAT}
    m.update(info)
    m['packages'] = packages
    m['patches'] = patches
    m['modules'] = modules
    m['firmware'] = firmware
    if a.image:
        st = os.stat(a.image)
        m['image'] = {'file': os.path.basename(a.image), 'format': 'erofs', 'compression': 'lz4hc',
                      'size': st.st_size, 'sha256': sha256_file(a.image)}
    m['files'] = files
    tmp = a.out + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(m, f, indent=1, sort_keys=False)
        f.write('\n')
    os.replace(tmp, a.out)


def cmd_check(a):
    with open(a.manifest) as f:
        want = {e['path']: e for e in json.load(f)['files']}
    have = {e['path']: e for e in file_list(a.tree)}
    bad = 0
    for p in sorted(set(want) | set(have)):
        if p not in have:
            print('missing: %s' % p)
        elif p not in want:
            print('not in the manifest: %s' % p)
        elif want[p] != have[p]:
            print('differs: %s: manifest %s, tree %s' % (p, json.dumps(want[p]), json.dumps(have[p])))
        else:
            continue
        bad += 1
    if bad:
        print('%d difference(s) between %s and %s' % (bad, a.tree, a.manifest))
        return 1
    print('%d entries match %s' % (len(want), a.manifest))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    w = sub.add_parser('write')
    w.add_argument('tree')
    w.add_argument('--out', required=True)
    w.add_argument('--info', required=True)
    w.add_argument('--packages', required=True)
    w.add_argument('--image')
    c = sub.add_parser('check')
    c.add_argument('tree')
    c.add_argument('manifest')
    fl = sub.add_parser('files')
    fl.add_argument('tree')
    a = ap.parse_args()
    if a.cmd == 'write':
        cmd_write(a)
        return 0
    if a.cmd == 'check':
        return cmd_check(a)
    json.dump(file_list(a.tree), sys.stdout, indent=1)
    sys.stdout.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
