"""Understanding of customer turns: intents and slots for the offline chat model."""
