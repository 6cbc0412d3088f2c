#line 2 "sparse_coding.cu"
