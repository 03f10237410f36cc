"""The child registry (so theo doi tre em): children, guardians, birth registration, special circumstances."""
