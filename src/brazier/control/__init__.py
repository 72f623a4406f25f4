"""brazier.control"""
