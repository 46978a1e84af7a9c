/**
 * Regenerates `.env.example` and the configuration table in README.md (between the
 * `<!-- config:begin -->` / `<!-- config:end -->` markers) from `src/config/settings.ts`.
 * `npm run docs:config`; the unit test `config/docs.test.ts` fails when they are out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { settings } from '../src/config/settings';

const ROOT = join(__dirname, '..');

export function envExample(): string {
  const lines = [
    '# Every setting of the pipeline, with its default. Generated from src/config/settings.ts',
    '# by `npm run docs:config`. Unset optional settings are shown commented out.',
  ];
  let group = '';
  for (const def of Object.values(settings)) {
    if (def.group !== group) {
      group = def.group;
      lines.push('', `# --- ${group} ---`);
    }
    lines.push(`# ${def.description} Expected: ${def.form}.`);
    lines.push(def.default !== undefined ? `${def.env}=${def.default}` : `# ${def.env}=`);
  }
  return lines.join('\n') + '\n';
}

export function configTable(): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const rows = Object.values(settings).map(
    (d) =>
      `| \`${d.env}\` | ${esc(d.form)} | ${d.default !== undefined ? `\`${esc(d.default)}\`` : '—'} | ${esc(d.description)}${d.secret ? ' **Secret.**' : ''} |`,
  );
  return ['| Variable | Type | Default | Meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

export function readmeWithTable(readme: string): string {
  return readme.replace(
    /(<!-- config:begin -->\n)[\s\S]*?(<!-- config:end -->)/,
    (_m, a: string, b: string) => `${a}${configTable()}\n${b}`,
  );
}

if (require.main === module) {
  writeFileSync(join(ROOT, '.env.example'), envExample());
  const readmePath = join(ROOT, 'README.md');
  writeFileSync(readmePath, readmeWithTable(readFileSync(readmePath, 'utf8')));
  console.log('wrote .env.example and the README configuration table');
}
