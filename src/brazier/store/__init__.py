"""brazier.store"""
