import type { CodegenConfig } from "@graphql-codegen/cli";

// Types for the example operations in ../operations, from the committed schema.
const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: ["../operations/*.graphql"],
  ignoreNoDocuments: false,
  generates: {
    "src/gql/": {
      preset: "client",
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        strictScalars: true,
        scalars: {
          // RFC 3339 text, as the scalar's @specifiedBy says; parse it with new Date(…).
          DateTime: "string",
          JSON: "unknown",
        },
      },
      presetConfig: { fragmentMasking: false },
    },
  },
};

export default config;
