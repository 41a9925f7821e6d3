"""Code the web front end and the workers share: settings, schema, intake, models, queue."""
