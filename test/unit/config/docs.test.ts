import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { settings } from '../../../src/config/settings';
import { envExample, readmeWithTable } from '../../../dev/gen-config-docs';

const root = join(__dirname, '../../..');

test('.env.example documents every setting and is up to date (npm run docs:config)', () => {
  const file = readFileSync(join(root, '.env.example'), 'utf8');
  expect(file).toBe(envExample());
  for (const def of Object.values(settings)) expect(file).toContain(def.env);
});

test('the README configuration table documents every setting and is up to date (npm run docs:config)', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  expect(readme).toBe(readmeWithTable(readme));
  for (const def of Object.values(settings)) expect(readme).toContain(`\`${def.env}\``);
});
