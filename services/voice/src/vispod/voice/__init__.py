"""vispod voice: dialogues rendered as podcasts, one voice per speaker."""
