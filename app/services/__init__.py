"""The domain: rules about groups and invitations, free of GraphQL and HTTP."""
