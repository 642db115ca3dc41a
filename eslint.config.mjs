// ESLint (flat config): typescript-eslint's type-aware recommended rules over the project's TypeScript.
// `npm run lint` runs it with --max-warnings 0; `npm test` runs lint before the tests.
// Formatting: @stylistic rules that the existing code already follows, not Prettier (which would rewrite ~120 of ~135
// files: the code keeps long single-line statements, so there is no line-length rule).
import js from '@eslint/js';
import stylistic from '@stylistic/eslint-plugin';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  {
    ignores: ['**/node_modules/**', 'cdk.out/**', 'out/**', '.local-data/**', 'bench/results/**', 'models/training/**'],
  },
  {
    files: [
      'src/**/*.ts',
      'functions/**/*.ts',
      'layers/**/*.ts',
      'cdk/**/*.ts',
      'bench/**/*.ts',
      'fixtures/**/*.ts',
      'models/severity/**/*.ts',
      'models/quantize/**/*.ts',
      'test/**/*.ts',
      'docs/*.ts',
    ],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        projectService: {
          // Scripts that nothing under tsconfig.json's "include" imports (so outside `tsc --noEmit`), typed with its
          // compiler options. (models/severity/analyze.ts and data.ts are imported by a test, so the project has them.)
          allowDefaultProject: ['models/severity/fit-scales.ts', 'models/quantize/fold.ts', 'models/quantize/cold.ts', 'docs/*.ts'],
          defaultProject: 'tsconfig.json',
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { '@stylistic': stylistic },
    linterOptions: {
      // A disable comment that suppresses nothing is an error, so each one names a rule that fires there.
      reportUnusedDisableDirectives: 'error',
    },
    rules: {
      // Async functions without await implement Promise-returning ports (stores, queues, clients); dropping `async`
      // would turn their rejections into synchronous throws.
      '@typescript-eslint/require-await': 'off',
      // Most findings are `!` on indexed reads written as if noUncheckedIndexedAccess were on, and `as` casts that name
      // a parsed shape (csv-parse, JSON); removing them changes no behaviour and loses that record.
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      '@stylistic/indent': ['error', 2],
      '@stylistic/semi': ['error', 'always'],
      '@stylistic/quotes': ['error', 'single', { avoidEscape: true, allowTemplateLiterals: 'always' }],
      '@stylistic/comma-dangle': ['error', 'always-multiline'],
      '@stylistic/member-delimiter-style': 'error',
      '@stylistic/no-extra-semi': 'error',
      '@stylistic/semi-spacing': 'error',
      '@stylistic/comma-spacing': 'error',
      '@stylistic/key-spacing': 'error',
      '@stylistic/keyword-spacing': 'error',
      '@stylistic/space-infix-ops': 'error',
      '@stylistic/space-before-blocks': 'error',
      '@stylistic/space-before-function-paren': ['error', { anonymous: 'always', named: 'never', asyncArrow: 'always' }],
      '@stylistic/function-call-spacing': 'error',
      '@stylistic/block-spacing': 'error',
      '@stylistic/type-annotation-spacing': 'error',
      '@stylistic/arrow-parens': ['error', 'always'],
      '@stylistic/spaced-comment': ['error', 'always'],
      '@stylistic/no-multi-spaces': 'error',
      '@stylistic/no-trailing-spaces': 'error',
      '@stylistic/no-tabs': 'error',
      '@stylistic/no-multiple-empty-lines': ['error', { max: 1, maxEOF: 0 }],
      '@stylistic/eol-last': 'error',
      '@stylistic/linebreak-style': 'error',
      // `_`-prefixed names are deliberately unused (positional parameters, destructuring).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // Tests and the report writers (bench, severity analysis) walk untyped JSON (CloudFormation templates, HTTP
    // bodies, their own result files) and check its shape at run time; typing every path of it would be noise.
    files: ['test/**/*.ts', 'bench/**/*.ts', 'fixtures/**/*.ts', 'models/severity/analyze.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
    },
  },
);
