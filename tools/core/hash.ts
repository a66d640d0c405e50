/** sha256 helpers: every source, patch and build is recorded by its checksum. */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

export function sha256FileSync(path: string): string {
  return sha256(readFileSync(path));
}
