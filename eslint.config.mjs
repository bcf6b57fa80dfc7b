import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      'dist/**',
      'build/**',
      'service/dist/**',
      '.cache/**',
      'coverage/**',
      '**/*.js',
      '**/*.mjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  // tools/ is four layers, each importing only the ones below it:
  // k8s (object model) <- manifests (schema, policy, diff, capacity, docs, await model)
  // <- runtime (launchers, twin, drills) <- bench. stacks/ may use the pure layers only.
  ...layer(
    'tools/k8s/**',
    ['manifests', 'runtime', 'bench'],
    'the Kubernetes object model imports no other part of tools/',
  ),
  ...layer('tools/manifests/**', ['runtime', 'bench'], 'pure manifest tooling does not start servers'),
  ...layer('tools/runtime/**', ['bench'], 'the local runtime does not depend on the benchmarks'),
  {
    files: ['stacks/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/tools/runtime/**', '**/tools/runtime', '**/tools/bench/**'],
              message:
                'stacks/ may import the pure parts of tools/ (k8s, manifests), never the local runtime or benchmarks',
            },
          ],
        },
      ],
    },
  },
  {
    // The construct library never sees an environment: stacks/ maps environments to props (docs/architecture.md).
    files: ['constructs/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/stacks', '**/stacks/**', '**/tools', '**/tools/**'],
              message:
                'constructs/ is a library: take what you need as props; stacks/ composes and tools/ reads the output.',
            },
          ],
        },
      ],
    },
  },
);

/** A `no-restricted-imports` block: files under `glob` must not import the sibling tools/ layers `above`. */
function layer(glob, above, why) {
  return [
    {
      files: [glob.replace(/\*\*$/, '**/*.ts')],
      rules: {
        'no-restricted-imports': [
          'error',
          {
            patterns: [
              {
                group: above.flatMap((l) => [
                  `../${l}`,
                  `../${l}/**`,
                  `../../${l}`,
                  `../../${l}/**`,
                  `../../../${l}/**`,
                ]),
                message: why,
              },
            ],
          },
        ],
      },
    },
  ];
}
