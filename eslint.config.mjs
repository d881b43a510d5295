// ESLint: the recommended rules of ESLint and typescript-eslint, for the library, its tests, bench and examples.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { languageOptions: { globals: globals.node } },
  {
    // lib/ loads its CommonJS dependencies with require() in exactly one place each, on purpose.
    files: ['lib/native.ts', 'lib/codec.ts', 'test/fixtures/*.cjs'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
