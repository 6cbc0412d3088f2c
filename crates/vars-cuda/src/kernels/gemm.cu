#line 2 "gemm.cu"
