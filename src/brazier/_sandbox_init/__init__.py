"""brazier._sandbox_init"""
