/** Expands the paths given on the command line into the image files to analyse. */
import { readdirSync, statSync } from 'node:fs';
import { basename, extname, join, relative } from 'node:path';

const IMAGE_EXTENSIONS = new Set(['.dcm', '.dicom', '.dic', '.png', '.jpg', '.jpeg', '']);

export interface InputFile {
  path: string;
  /** A short, unique, file-system-safe name for outputs (relative path with '/' replaced). */
  name: string;
}

export function collectInputs(paths: string[]): InputFile[] {
  const files: { path: string; rel: string }[] = [];
  const walk = (dir: string, root: string) => {
    for (const entry of readdirSync(dir).sort()) {
      if (entry.startsWith('.')) continue;
      const p = join(dir, entry);
      const st = statSync(p);
      if (st.isDirectory()) walk(p, root);
      else if (IMAGE_EXTENSIONS.has(extname(entry).toLowerCase())) files.push({ path: p, rel: relative(root, p) });
    }
  };
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch {
      throw new Error(`${p}: no such file or folder`);
    }
    if (st.isDirectory()) walk(p, p);
    else files.push({ path: p, rel: basename(p) });
  }
  const seen = new Map<string, number>();
  return files.map((f) => {
    let name = f.rel.replace(/[\\/]/g, '__');
    const n = seen.get(name) ?? 0;
    seen.set(name, n + 1);
    if (n > 0) name = `${name}_${n}`;
    return { path: f.path, name };
  });
}
