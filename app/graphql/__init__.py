"""The GraphQL API: thin resolvers over app.services."""
