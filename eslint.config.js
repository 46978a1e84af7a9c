// @ts-check
const js = require('@eslint/js');
const tseslint = require('typescript-eslint');
const { builtinModules } = require('node:module');

/** Node built-ins and SDK clients are not allowed in deterministic workflow code (types are fine). */
const workflowBanMessage =
  'Workflows are deterministic: no Node built-ins or SDK clients (import types only).';
const workflowBannedPaths = [
  ...builtinModules,
  ...builtinModules.map((m) => `node:${m}`),
  '@temporalio/activity',
  '@temporalio/client',
  '@temporalio/worker',
  'twitter-api-v2',
  'pino',
  'prom-client',
].map((name) => ({ name, message: workflowBanMessage, allowTypeImports: true }));

module.exports = tseslint.config(
  {
    ignores: [
      'node_modules/',
      'dist/',
      '.tools/',
      '.local/',
      'artifacts/',
      'coverage/',
      'src/dashboard/public/vendor/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: __dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/**/dev/**'],
    rules: { 'no-console': 'error' },
  },
  {
    files: ['src/workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: workflowBannedPaths,
          patterns: [
            {
              group: [
                '@google-cloud/*',
                '**/adapters/**',
                '**/observability/**',
                '**/config',
                '**/config/*',
                // Activity code runs outside the sandbox; workflows take its types for proxyActivities.
                '**/activities',
                '**/activities/*',
              ],
              allowTypeImports: true,
              message: workflowBanMessage,
            },
            {
              group: ['**/workers', '**/workers/*', '**/dashboard', '**/dashboard/*'],
              message: 'Workflows never import the worker processes or the dashboard, not even their types.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/domain/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [...builtinModules, ...builtinModules.map((m) => `node:${m}`)].map((name) => ({
            name,
            message: 'The domain is sandbox-safe (workflows import it): no Node built-ins.',
          })),
        },
      ],
    },
  },
  {
    files: ['**/*.js'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
    languageOptions: {
      globals: { require: 'readonly', module: 'writable', __dirname: 'readonly', process: 'readonly' },
    },
  },
);
