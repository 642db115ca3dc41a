/**
 * Images that are not frontal chest X-rays, made by the test or taken from Debian packages, for the guard tests.
 * None of the photographs here is in the guard's training data: models/training/guard.py holds out exactly the
 * python3-skimage photographs listed in SKIMAGE_HELD_OUT and never sees desktop-base or ImageMagick images.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { prng } from '../../src/stats';

export interface NonChest {
  name: string;
  bytes: Buffer;
}

const SKIMAGE = '/usr/lib/python3/dist-packages/skimage/data';
/** Must equal HELD_OUT_PHOTOS in models/training/guard.py. */
export const SKIMAGE_HELD_OUT = ['chelsea.png', 'coffee.png', 'rocket.jpg', 'motorcycle_left.png', 'motorcycle_right.png', 'hubble_deep_field.jpg', 'retina.jpg'];
const MAGICK_BUILTINS = ['logo:', 'wizard:', 'rose:', 'granite:', 'netscape:'];

const gray = (w: number, h: number, f: (x: number, y: number) => number): Promise<Buffer> => {
  const d = Buffer.alloc(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) d[y * w + x] = Math.max(0, Math.min(255, Math.round(f(x, y))));
  return sharp(d, { raw: { width: w, height: h, channels: 1 } }).png().toBuffer();
};

function svg(w: number, h: number, body: string): Promise<Buffer> {
  return sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">${body}</svg>`)).png().toBuffer();
}

/** Generated images: noise, smooth noise, gradients, flat fields, a text page, shapes, a checkerboard. */
export async function generatedNonChest(seed = 424242): Promise<NonChest[]> {
  const rnd = prng(seed);
  const grid = Array.from({ length: 64 }, () => rnd() * 255);
  const out: NonChest[] = [
    { name: 'uniform noise', bytes: await gray(512, 512, () => rnd() * 255) },
    { name: 'smooth noise', bytes: await sharp(await gray(8, 8, (x, y) => grid[y * 8 + x])).resize(600, 500, { kernel: 'cubic' }).png().toBuffer() },
    { name: 'colour noise JPEG', bytes: await sharp(Buffer.from(Array.from({ length: 400 * 300 * 3 }, () => Math.floor(rnd() * 256))), { raw: { width: 400, height: 300, channels: 3 } }).jpeg().toBuffer() },
    { name: 'horizontal gradient', bytes: await gray(640, 480, (x) => (x / 640) * 255) },
    { name: 'vertical gradient', bytes: await gray(480, 640, (_x, y) => 40 + (y / 640) * 200) },
    { name: 'radial gradient', bytes: await gray(512, 512, (x, y) => Math.hypot(x - 256, y - 256) * 0.7) },
    { name: 'flat grey 600x600 JPEG', bytes: await sharp({ create: { width: 600, height: 600, channels: 3, background: { r: 128, g: 128, b: 128 } } }).jpeg().toBuffer() },
    { name: 'flat black', bytes: await gray(512, 512, () => 0) },
    { name: 'flat white', bytes: await gray(512, 512, () => 255) },
    { name: 'checkerboard', bytes: await gray(512, 512, (x, y) => ((Math.floor(x / 32) + Math.floor(y / 32)) % 2) * 255) },
    {
      name: 'text page',
      bytes: await svg(850, 1100, `<rect width="850" height="1100" fill="white"/>` + Array.from({ length: 40 }, (_, i) =>
        `<text x="60" y="${80 + i * 24}" font-family="DejaVu Sans" font-size="16" fill="black">Radiology report line ${i}: findings and impression of the study, page 1 of 2</text>`).join('')),
    },
    {
      name: 'shapes',
      bytes: await svg(600, 600, `<rect width="600" height="600" fill="#333"/><circle cx="200" cy="250" r="120" fill="#ddd"/>` +
        `<rect x="330" y="120" width="180" height="300" fill="#999"/><polygon points="100,550 300,400 500,560" fill="#eee"/>`),
    },
    {
      name: 'two dark ellipses on white (a cartoon of lungs)',
      bytes: await svg(500, 500, `<rect width="500" height="500" fill="white"/><ellipse cx="160" cy="250" rx="80" ry="160" fill="#111"/><ellipse cx="340" cy="250" rx="80" ry="160" fill="#111"/>`),
    },
  ];
  return out;
}

/** Photographs and artwork from Debian packages (python3-skimage, desktop-base, imagemagick) when installed. */
export function packagedPhotos(): { photos: NonChest[]; missing: string[] } {
  const photos: NonChest[] = [];
  const missing: string[] = [];
  if (existsSync(SKIMAGE)) {
    for (const f of SKIMAGE_HELD_OUT) if (existsSync(join(SKIMAGE, f))) photos.push({ name: `skimage ${f}`, bytes: readFileSync(join(SKIMAGE, f)) });
  } else missing.push('python3-skimage');
  const db = '/usr/share/desktop-base';
  if (existsSync(db)) {
    const files: string[] = [];
    for (const theme of readdirSync(db)) {
      for (const sub of ['login', 'grub']) {
        const d = join(db, theme, sub);
        if (existsSync(d)) for (const f of readdirSync(d)) if (/\.(png|jpe?g)$/i.test(f)) files.push(join(d, f));
      }
    }
    for (const f of files.sort().slice(0, 6)) photos.push({ name: `desktop-base ${f.slice(db.length + 1)}`, bytes: readFileSync(f) });
  } else missing.push('desktop-base');
  const convert = '/usr/bin/convert';
  if (existsSync(convert)) {
    for (const b of MAGICK_BUILTINS) {
      try {
        photos.push({ name: `imagemagick ${b}`, bytes: execFileSync(convert, [b, '-resize', '512x512<', 'png:-'], { maxBuffer: 64 << 20 }) });
      } catch {
        missing.push(`imagemagick ${b}`);
      }
    }
  } else missing.push('imagemagick');
  return { photos, missing };
}

/** A real chest film made implausible: rotated 90 degrees, upside down, inverted. */
export async function spoiledFilms(film: Buffer): Promise<NonChest[]> {
  return [
    { name: 'chest film rotated 90 degrees', bytes: await sharp(film).rotate(90).png().toBuffer() },
    { name: 'chest film rotated 270 degrees', bytes: await sharp(film).rotate(270).png().toBuffer() },
    { name: 'chest film upside down', bytes: await sharp(film).flip().png().toBuffer() },
    { name: 'chest film inverted', bytes: await sharp(film).negate({ alpha: false }).png().toBuffer() },
  ];
}
