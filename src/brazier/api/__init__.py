"""brazier.api"""
